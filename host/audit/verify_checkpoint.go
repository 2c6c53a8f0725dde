package audit

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// listing is what the checkpoints saw of one session: its highest
// checkpointed row.
type listing struct {
	seq      uint64
	hash     string
	run      string
	cpSeq    uint64
	firstAt  time.Time // the first checkpoint that listed it
	interval time.Duration
}

type runInfo struct {
	intact  bool // the chain verified
	gateway string
	start   time.Time
	final   bool
	finalAt time.Time
}

type checkpoints struct {
	findings []Finding
	listed   map[string]listing
	runs     map[string]runInfo
}

// verifyCheckpoints checks each run's checkpoint chain and the links
// between runs, and collects what the checkpoints listed.
func verifyCheckpoints(order []string, byRun map[string][]Row, o VerifyOptions) *checkpoints {
	c := &checkpoints{listed: map[string]listing{}, runs: map[string]runInfo{}}
	at := map[string]int{} // run -> index in findings
	for _, run := range order {
		rows := dedupe(byRun[run])
		byRun[run] = rows
		f := Finding{SessionID: run, Rows: len(rows), Checkpoints: true, GatewayID: rows[0].GatewayID}
		f.Status, f.Detail = checkChain(rows, o)
		info := runInfo{gateway: rows[0].GatewayID, start: rows[0].Time}
		if last := rows[len(rows)-1]; last.Status == CheckpointFinal {
			info.final, info.finalAt = true, last.Time
		}
		if f.Status == StatusComplete && !info.final {
			f.Status, f.Detail = StatusOpen, "no final checkpoint: the gateway was stopped uncleanly (or still runs)"
		}
		info.intact = !Tampered(f.Status)
		c.runs[run] = info
		for i, r := range rows {
			if Hash(&rows[i]) == r.RowHash {
				c.list(r)
			}
		}
		at[run] = len(c.findings)
		c.findings = append(c.findings, f)
	}
	// A run's first checkpoint names the head the run before it left: that
	// checkpoint must still be there, unchanged.
	for _, run := range order {
		for _, r := range byRun[run] {
			prevRun := r.Annotations[annPrevRun]
			if prevRun == "" {
				continue
			}
			seq, _ := strconv.ParseUint(r.Annotations[annPrevSeq], 10, 64)
			var found *Row
			for i, p := range byRun[prevRun] {
				if p.Seq == seq {
					found = &byRun[prevRun][i]
				}
			}
			status, detail := "", ""
			switch {
			case found == nil:
				status, detail = StatusCheckpointMissing, fmt.Sprintf("checkpoint %d, which run %s links to, is missing", seq, run)
			case found.RowHash != r.Annotations[annPrevHead]:
				status, detail = StatusCheckpointEdited, fmt.Sprintf("checkpoint %d is not the head run %s links to", seq, run)
			default:
				continue
			}
			if info, ok := c.runs[prevRun]; ok {
				info.intact = false
				c.runs[prevRun] = info
			}
			if i, ok := at[prevRun]; ok {
				if !Tampered(c.findings[i].Status) {
					c.findings[i].Status, c.findings[i].Detail = status, detail
				}
				continue
			}
			at[prevRun] = len(c.findings)
			c.findings = append(c.findings, Finding{SessionID: prevRun, Checkpoints: true, GatewayID: r.GatewayID, Status: status, Detail: detail})
		}
	}
	return c
}

// checkChain checks one run's checkpoints, sorted by seq.
func checkChain(rows []Row, o VerifyOptions) (status, detail string) {
	prev := ""
	for i, r := range rows {
		switch {
		case r.Seq != uint64(i+1):
			return StatusCheckpointGap, fmt.Sprintf("checkpoint %d missing (next is %d)", i+1, r.Seq)
		case Hash(&rows[i]) != r.RowHash:
			return StatusCheckpointEdited, fmt.Sprintf("checkpoint %d does not match its hash", r.Seq)
		case r.PrevHash != prev:
			return StatusCheckpointEdited, fmt.Sprintf("checkpoint %d does not follow checkpoint %d", r.Seq, r.Seq-1)
		case SessionsHash(r.Request) != r.Annotations[annSessionsHash]:
			return StatusCheckpointEdited, fmt.Sprintf("checkpoint %d's list does not match its commitment", r.Seq)
		}
		prev = r.RowHash
		if o.PublicKey != nil {
			sig, err := hex.DecodeString(r.Signature)
			switch {
			case r.Signature == "":
				return StatusCheckpointUnsigned, fmt.Sprintf("checkpoint %d carries no signature", r.Seq)
			case err != nil || !ed25519.Verify(o.PublicKey, []byte(r.RowHash), sig):
				return StatusCheckpointBadSig, fmt.Sprintf("checkpoint %d's signature does not verify with the public key", r.Seq)
			}
		}
	}
	return StatusComplete, fmt.Sprintf("%d checkpoints, ended by a clean shutdown", len(rows))
}

func (c *checkpoints) list(r Row) {
	interval, _ := time.ParseDuration(r.Annotations[annInterval])
	for sid, v := range r.Request {
		h, ok := parseHead(v)
		if !ok {
			continue
		}
		l, seen := c.listed[sid]
		if !seen || r.Time.Before(l.firstAt) {
			l.firstAt, l.interval = r.Time, interval
		}
		if h.seq > l.seq {
			l.seq, l.hash, l.run, l.cpSeq = h.seq, h.hash, r.SessionID, r.Seq
		}
		c.listed[sid] = l
	}
}

// hold checks a session's finding against what the checkpoints saw.
func (c *checkpoints) hold(f Finding, rows []Row) Finding {
	if Tampered(f.Status) || len(rows) == 0 {
		return f
	}
	first, last := rows[0], rows[len(rows)-1]
	l, ok := c.listed[f.SessionID]
	if !ok {
		// Every row a gateway records passes its checkpointer: a session
		// inside a cleanly ended run that no checkpoint lists was added
		// to the store afterwards. Unless another run of that gateway ID
		// (a second process under the same ID) is open and may still owe
		// a checkpoint for it.
		for _, info := range c.runs {
			if info.gateway == first.GatewayID && !info.final && !info.start.After(last.Time) {
				return f
			}
		}
		for run, info := range c.runs {
			if info.intact && info.final && info.gateway == first.GatewayID && !first.Time.Before(info.start) && !last.Time.After(info.finalAt) {
				f.Status, f.Detail = StatusUncheckpointed, fmt.Sprintf("run %s shut down cleanly after these rows, and no checkpoint lists them", run)
				return f
			}
		}
		return f
	}
	switch {
	case last.Seq < l.seq:
		f.Status, f.Detail = StatusTruncated, fmt.Sprintf("rows end at seq %d; checkpoint %d of run %s saw seq %d", last.Seq, l.cpSeq, l.run, l.seq)
	case rows[l.seq-1].RowHash != l.hash:
		f.Status, f.Detail = StatusEdited, fmt.Sprintf("seq %d is not the row checkpoint %d of run %s saw (the session was rewritten)", l.seq, l.cpSeq, l.run)
	case f.Status == StatusOpen && c.runs[l.run].final && last.Seq > l.seq:
		f.Status, f.Detail = StatusUncheckpointed, fmt.Sprintf("seq %d to %d came after the final checkpoint of run %s", l.seq+1, last.Seq, l.run)
	case f.Status == StatusOpen && c.runs[l.run].final:
		f.Detail = "the gateway shut down cleanly without closing the session; every row is there"
	case f.Status == StatusOpen:
		f.Detail = fmt.Sprintf("the gateway stopped after checkpoint %d of run %s saw seq %d (rows after it are not provable)", l.cpSeq, l.run, l.seq)
	}
	return f
}
