package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KindCheckpoint is a gateway's signed head over the session chains it
// wrote: a session chain proves its rows are intact, but not that its last
// rows, or the whole session, still exist. Checkpoints do (see
// Checkpointing).
const KindCheckpoint = "audit.checkpoint"

// Checkpoint statuses (the row's status column).
const (
	CheckpointStart    = "start"    // first of a run; links to the previous run
	CheckpointInterval = "interval" // periodic, when something changed
	CheckpointFinal    = "final"    // at a clean shutdown
)

// Checkpoint annotation keys.
const (
	annSessionsHash = "sessions_hash"
	annSessions     = "sessions"
	annInterval     = "interval"
	annPrevRun      = "prev_run"
	annPrevSeq      = "prev_seq"
	annPrevHead     = "prev_head"
)

// DefaultCheckpointInterval is how often a checkpoint is written while
// rows come in.
const DefaultCheckpointInterval = 10 * time.Second

// CheckpointOptions configure Checkpointing.
type CheckpointOptions struct {
	GatewayID string
	Key       ed25519.PrivateKey // signs each checkpoint; nil: they chain by hash only
	Interval  time.Duration      // default DefaultCheckpointInterval
	// StatePath keeps the last durable head across restarts, so that the
	// next run's first checkpoint links to it and a deleted run shows.
	// Empty: runs are not linked.
	StatePath string
	Log       *slog.Logger
	// OnHead is called with each checkpoint written (e.g. to send the head
	// to a webhook). It must not block.
	OnHead func(Row)
	now    func() time.Time
}

// Checkpointer is a Recorder that writes checkpoint rows. Each process
// run is one checkpoint chain whose session_id is the run's ID and whose
// seq counts checkpoints: kind audit.checkpoint, status start, interval or
// final, prev_hash the previous checkpoint's row hash, and the request
// map holding, for every chain touched since the previous checkpoint, its
// session ID -> "last seq:last row hash" (the annotation sessions_hash is
// the SHA-256 of that sorted list). The row is signed like a close row.
// Checkpoints go through the wrapped recorder, behind the rows they
// cover, so they share the spool's durability and order.
type Checkpointer struct {
	rec Recorder
	o   CheckpointOptions
	run string

	mu      sync.Mutex // guards touched
	touched map[string]head

	wmu   sync.Mutex // serializes writing checkpoints
	chain SessionChain
	seq   uint64
	last  Row // the last checkpoint written
	first bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type head struct {
	seq  uint64
	hash string
}

type checkpointState struct {
	Run  string `json:"run"`
	Seq  uint64 `json:"seq"`
	Head string `json:"head"`
}

// Checkpointing wraps rec: it notes the last row of every chain recorded,
// writes a start checkpoint now, one every interval when something
// changed, and a final one at Close.
func Checkpointing(rec Recorder, o CheckpointOptions) *Checkpointer {
	if o.Interval <= 0 {
		o.Interval = DefaultCheckpointInterval
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	c := &Checkpointer{rec: rec, o: o, run: NewID(), touched: map[string]head{}, first: true,
		stop: make(chan struct{}), done: make(chan struct{})}
	// A full spool must not keep the gateway from starting (it refuses
	// requests instead): the next checkpoint carries what this one would.
	if err := c.write(CheckpointStart); err != nil {
		o.Log.Error("audit start checkpoint failed", "err", err)
	}
	go c.loop()
	return c
}

// Run is this process's checkpoint chain ID.
func (c *Checkpointer) Run() string { return c.run }

// Admit passes through to the wrapped recorder.
func (c *Checkpointer) Admit() error {
	if a, ok := c.rec.(Admitter); ok {
		return a.Admit()
	}
	return nil
}

// Record records r and notes it as its chain's last row.
func (c *Checkpointer) Record(r Row) error {
	if err := c.rec.Record(r); err != nil {
		return err
	}
	c.note(r)
	return nil
}

// RecordTicket is Record for a synced row (durable.go).
func (c *Checkpointer) RecordTicket(r Row) (Ticket, error) {
	t, err := RecordTicket(c.rec, r, true)
	if err == nil {
		c.note(r)
	}
	return t, err
}

// WaitDurable waits on the wrapped recorder.
func (c *Checkpointer) WaitDurable(ctx context.Context, t Ticket) error {
	return waitOn(ctx, c.rec, t)
}

// note keeps r as its chain's last row, for the next checkpoint.
func (c *Checkpointer) note(r Row) {
	if r.RowHash != "" && r.Kind != KindCheckpoint {
		c.mu.Lock()
		if h, ok := c.touched[r.SessionID]; !ok || r.Seq > h.seq {
			c.touched[r.SessionID] = head{r.Seq, r.RowHash}
		}
		c.mu.Unlock()
	}
}

func (c *Checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			dirty := len(c.touched) > 0
			c.mu.Unlock()
			if dirty {
				if err := c.write(CheckpointInterval); err != nil {
					c.o.Log.Error("audit checkpoint failed", "err", err)
				}
			}
		}
	}
}

// Checkpoint writes an interval checkpoint now if anything changed.
func (c *Checkpointer) Checkpoint() error {
	c.mu.Lock()
	dirty := len(c.touched) > 0
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	return c.write(CheckpointInterval)
}

// Close writes the final checkpoint, closes the wrapped recorder and, once
// that flushed, saves the final head for the next run.
func (c *Checkpointer) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Checkpointer) close() error {
	close(c.stop)
	<-c.done
	err := c.write(CheckpointFinal)
	if cerr := c.rec.Close(); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	return c.saveState(c.last)
}

func (c *Checkpointer) write(status string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	touched := c.touched
	c.touched = map[string]head{}
	c.mu.Unlock()

	c.seq++
	r := Row{EventID: NewID(), Time: c.o.now().UTC().Truncate(time.Microsecond), GatewayID: c.o.GatewayID,
		SessionID: c.run, Seq: c.seq, Protocol: "audit", Kind: KindCheckpoint, Status: status,
		Annotations: map[string]string{annInterval: c.o.Interval.String()}}
	if len(touched) > 0 {
		r.Request = make(map[string]string, len(touched))
		for sid, h := range touched {
			r.Request[sid] = strconv.FormatUint(h.seq, 10) + ":" + h.hash
		}
	}
	r.Annotations[annSessions] = strconv.Itoa(len(touched))
	r.Annotations[annSessionsHash] = SessionsHash(r.Request)
	if c.first && c.o.StatePath != "" {
		if st, ok := c.loadState(); ok {
			r.Annotations[annPrevRun], r.Annotations[annPrevSeq], r.Annotations[annPrevHead] = st.Run, strconv.FormatUint(st.Seq, 10), st.Head
		}
	}
	c.chain.Seal(&r)
	if c.o.Key != nil {
		r.Signature = hex.EncodeToString(ed25519.Sign(c.o.Key, []byte(r.RowHash)))
	}
	if err := c.rec.Record(r); err != nil {
		// Give the sessions back: the next checkpoint covers them.
		c.seq--
		c.chain.prev = r.PrevHash
		c.mu.Lock()
		for sid, h := range touched {
			if cur, ok := c.touched[sid]; !ok || h.seq > cur.seq {
				c.touched[sid] = h
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	c.first = false
	// The previous checkpoint has had an interval to reach the spool or
	// the file: it is the head a restart after a crash can rely on.
	if err := c.saveState(c.last); err != nil {
		c.o.Log.Warn("audit checkpoint state not saved", "err", err)
	}
	c.last = r
	// The head goes to the log too: a copy outside the store is what
	// shows a deleted tail of checkpoints (README, threat model).
	c.o.Log.Info("audit checkpoint", "gateway_id", r.GatewayID, "run", r.SessionID, "seq", r.Seq,
		"status", status, "sessions", len(touched), "head", r.RowHash)
	if c.o.OnHead != nil {
		c.o.OnHead(r)
	}
	return nil
}

func (c *Checkpointer) loadState() (checkpointState, bool) {
	var st checkpointState
	b, err := os.ReadFile(c.o.StatePath)
	if err != nil {
		if !os.IsNotExist(err) {
			c.o.Log.Warn("audit checkpoint state unreadable; this run is not linked to the last", "err", err)
		}
		return st, false
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Run == "" {
		c.o.Log.Warn("audit checkpoint state unreadable; this run is not linked to the last", "path", c.o.StatePath)
		return st, false
	}
	return st, true
}

func (c *Checkpointer) saveState(r Row) error {
	if c.o.StatePath == "" || r.RowHash == "" {
		return nil
	}
	b, _ := json.Marshal(checkpointState{Run: r.SessionID, Seq: r.Seq, Head: r.RowHash})
	if err := os.MkdirAll(filepath.Dir(c.o.StatePath), 0o700); err != nil {
		return fmt.Errorf("audit: checkpoint state: %w", err)
	}
	tmp := c.o.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("audit: checkpoint state: %w", err)
	}
	if err := os.Rename(tmp, c.o.StatePath); err != nil {
		return fmt.Errorf("audit: checkpoint state: %w", err)
	}
	return nil
}

// SessionsHash is the commitment a checkpoint carries to its list: the
// hex SHA-256 of "session_id seq:hash\n" lines sorted by session ID.
func SessionsHash(list map[string]string) string {
	keys := make([]string, 0, len(list))
	for k := range list {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s %s\n", k, list[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parseHead reads a checkpoint list value "seq:hash".
func parseHead(v string) (head, bool) {
	s, h, ok := strings.Cut(v, ":")
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil || n == 0 {
		return head{}, false
	}
	return head{n, h}, true
}
