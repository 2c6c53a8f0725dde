package audit

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
)

// Finding is what Verify concludes about one session.
type Finding struct {
	SessionID string
	Rows      int
	Status    string // complete, open, gap, edited, reordered
	Detail    string
}

// Session statuses. "open" is not tampering: the gateway stopped (or
// crashed) before it could close the session.
const (
	StatusComplete  = "complete"
	StatusOpen      = "open"
	StatusGap       = "gap"
	StatusEdited    = "edited"
	StatusReordered = "reordered"
	StatusBadSig    = "bad-signature"
	StatusUnsigned  = "unsigned"
)

// VerifyOptions add checks to Verify.
type VerifyOptions struct {
	// PublicKey, when set, requires every closed session's close row to
	// carry a valid signature by the matching private key.
	PublicKey ed25519.PublicKey
}

// Verify checks the hash chain of every session in rows, which may come in
// any order and may hold the same event more than once (a replayed batch):
// duplicates of an identical row are ignored.
func Verify(rows []Row) []Finding { return VerifyWith(rows, VerifyOptions{}) }

// VerifyWith is Verify with options.
func VerifyWith(rows []Row, o VerifyOptions) []Finding {
	bySession := map[string][]Row{}
	var order []string
	for _, r := range rows {
		if _, ok := bySession[r.SessionID]; !ok {
			order = append(order, r.SessionID)
		}
		bySession[r.SessionID] = append(bySession[r.SessionID], r)
	}
	out := make([]Finding, 0, len(order))
	for _, sid := range order {
		out = append(out, verifySession(sid, bySession[sid], o))
	}
	return out
}

func verifySession(sid string, rows []Row, o VerifyOptions) Finding {
	f := Finding{SessionID: sid}
	// Stored order is not trusted: sort by sequence, drop exact replays.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	uniq := rows[:0:0]
	for i, r := range rows {
		if i > 0 && r.Seq == rows[i-1].Seq && r.RowHash == rows[i-1].RowHash && r.EventID == rows[i-1].EventID {
			continue
		}
		uniq = append(uniq, r)
	}
	f.Rows = len(uniq)
	prev := ""
	for i, r := range uniq {
		want := uint64(i + 1)
		switch {
		case r.Seq != want:
			f.Status, f.Detail = StatusGap, fmt.Sprintf("row %d missing (next is seq %d)", want, r.Seq)
			return f
		case Hash(r) != r.RowHash:
			f.Status, f.Detail = StatusEdited, fmt.Sprintf("seq %d does not match its hash", r.Seq)
			return f
		case r.PrevHash != prev:
			// A row whose own hash is intact but that does not follow the
			// row before it was moved, or its predecessor was replaced.
			f.Status, f.Detail = StatusReordered, fmt.Sprintf("seq %d does not follow seq %d", r.Seq, r.Seq-1)
			return f
		}
		prev = r.RowHash
	}
	if len(uniq) == 0 || !Closes(uniq[len(uniq)-1].Kind) {
		f.Status, f.Detail = StatusOpen, "the session was never closed (the gateway stopped before it could close it)"
		return f
	}
	if o.PublicKey != nil {
		last := uniq[len(uniq)-1]
		sig, err := hex.DecodeString(last.Signature)
		switch {
		case last.Signature == "":
			f.Status, f.Detail = StatusUnsigned, "the close row carries no signature"
			return f
		case err != nil || !ed25519.Verify(o.PublicKey, []byte(last.RowHash), sig):
			f.Status, f.Detail = StatusBadSig, "the close row's signature does not verify with the public key"
			return f
		}
	}
	f.Status = StatusComplete
	return f
}
