package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/audit/spool"
)

// Store is where batches of rows end up; *clickhouse.Store is one. Insert
// is all or nothing per call, and may be called again with the same rows
// (at-least-once): stores present each event ID once.
type Store interface {
	Insert(ctx context.Context, rows []Row) error
	Close() error
}

// Pinger is a Store that can be checked without rows. The pipeline pings
// it at start and, while it is down and no rows are waiting, with backoff,
// so that the operator learns of an outage (log and metric) before the
// first row, and a store that applies its schema lazily
// (clickhouse.Connect) applies it as soon as the server is back.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrFull is returned by Record when the spool is full and the operator
// chose on_full = "refuse": the caller refuses the request, because an
// unaudited action is worse than a failed one.
var ErrFull = errors.New("audit: spool full; refusing new work until the audit store catches up")

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Store     Store
	Spool     spool.Options
	OnFull    string        // "refuse" (default) or "drop"
	BatchRows int           // rows per insert; default 10,000
	BatchAge  time.Duration // the longest a row waits for its batch; default 1s
	Log       *slog.Logger
}

// Pipeline is the production Recorder: rows go to a durable local spool
// and, in batches, to the store; a row leaves the spool only after the
// store acknowledged its batch. The request path never waits on the store.
//
// Record appends the row to an in-memory buffer (no encoding, no I/O); a
// writer goroutine encodes and appends buffered rows to the spool every
// couple of milliseconds; a shipper goroutine inserts batches and
// acknowledges them in the spool. At start, and whenever the in-memory
// queue was dropped to bound memory while the store was away, the shipper
// replays the spool from the last acknowledged row.
type Pipeline struct {
	o     PipelineOptions
	sp    *spool.Spool
	log   *slog.Logger
	stats pipelineStats

	mu      sync.Mutex
	pending []Row     // accepted, not yet in the spool
	queue   []shipped // in the spool, not yet in the store
	queued  int       // rows in queue
	// queuedBytes is what the queue's rows hold in memory (sizeOf plus
	// the Row itself).
	queuedBytes int64
	replay      bool // the queue is incomplete: replay the spool
	full        bool // the last spool append hit the size limit
	closed      bool
	// Admission: a row is accepted only if it will fit in the spool, so
	// that nothing accepted is ever lost. Estimated from the spool's size
	// and the rows' average encoded size.
	spoolBytes int64
	rowBytes   int64 // the average encoded row, for Admit's "one more row"
	// pendingBytes and inflightBytes estimate the encoded size of the rows
	// in pending and of those the writer is appending (sizeOf), so that
	// admission does not depend on an average that large rows beat.
	pendingBytes, inflightBytes int64
	// refusing is set when Record refused an ordinary row and cleared
	// when the store acknowledges rows (the spool shrinks): Admit refuses
	// meanwhile, whatever its own estimate says.
	refusing bool
	limits   [3]int64 // by admission tier (tierOf)
	// Tickets (durable.go): every accepted row gets the next one, and
	// rows reach the spool in ticket order, so "every row up to ticket
	// spooledT is in the spool" is one number.
	tickets  uint64 // the last ticket handed out
	spooledT uint64 // rows up to this ticket are appended to the spool
	syncWant uint64 // the highest ticket a synced caller asked for
	dur      durableMark

	wake     chan struct{} // writer: pending grew
	ship     chan struct{} // shipper: queue grew
	stop     chan struct{}
	halt     <-chan struct{} // insert gives up retrying when this closes
	writerWG sync.WaitGroup
	shipWG   sync.WaitGroup
	acked    spool.Pos
	encBuf   []byte // the writer's encoding buffer, reused between chunks

	health storeHealth
	// batchSeconds is how long the store took to take a batch (metrics.go).
	batchSeconds prometheus.Histogram
}

// storeHealth is what the pipeline knows of the store's reachability,
// from its inserts and pings. An outage is logged once when it starts,
// then again at doubling intervals (up to outageLogMax), never per row or
// per retry, and once when it ends.
type storeHealth struct {
	mu        sync.Mutex
	down      bool
	downSince time.Time
	nextLog   time.Time
	logGap    time.Duration
	lastErr   string
}

// Outage logging: the first repeat after outageLogFirst, each one after
// twice the gap before, at most outageLogMax apart.
const (
	outageLogFirst = 5 * time.Second
	outageLogMax   = time.Minute
)

// maxPendingHint caps the capacity the pending buffer starts with.
const maxPendingHint = 4096

// maxKeptEncBuf bounds the encoding buffer the writer keeps between
// chunks (a chunk of unusually large rows gets a one-off buffer).
const maxKeptEncBuf = 4 << 20

type shipped struct {
	rows  []Row
	last  spool.Pos
	at    time.Time
	bytes int64 // sizeOf the rows, plus the Rows themselves
}

type pipelineStats struct {
	accepted, spooled, shipped, dropped, refused, retries, outages, reserved atomic.Uint64
	fsyncs, fsyncedRows                                                      atomic.Uint64
}

// PipelineStats are the pipeline's counters, for metrics and logs.
type PipelineStats struct {
	Accepted, Spooled, Shipped, Dropped, Refused, Retries uint64
	SpoolBytes                                            int64
	// SpoolPending is the rows in the spool the store has not yet
	// acknowledged (at start: what the last run left).
	SpoolPending int64
	// QueuedBytes is what the rows queued in memory for the store hold
	// (bounded by queuedBytesMax; the spool has the rest).
	QueuedBytes int64
	// PendingRows are accepted rows not yet in the spool; QueuedRows are
	// spooled rows queued in memory for the store (while the queue is
	// dropped to bound memory, waiting rows are in the spool alone).
	PendingRows, QueuedRows int
	// SpoolMaxBytes is the spool's size cap.
	SpoolMaxBytes int64
	// StoreReachable is false from a failed insert or ping of the store
	// to the next one that succeeds (true before the first attempt).
	StoreReachable bool
	// StoreDownSince is when the current outage began (zero when up).
	StoreDownSince time.Time
	// Reserved counts rows accepted into the spool's reserve (see
	// tierOf): session and refusal rows taken while other rows were
	// refused.
	Reserved uint64
	// StoreError is the last failure of the current outage.
	StoreError string
	// StoreOutages counts outages seen since start (a change from
	// reachable, or unknown, to unreachable).
	StoreOutages uint64
	// Fsyncs counts the writer's group commits for synced rows, and
	// FsyncedRows the rows they made durable (synced rows and the
	// spooled rows appended with them): FsyncedRows/Fsyncs is the group.
	Fsyncs, FsyncedRows uint64
}

// queuedBatches bounds the rows held in memory for the shipper (this many
// batches); past it the in-memory copies are dropped and the spool is
// replayed instead, so memory stays bounded however long the store is away.
const queuedBatches = 4

// queuedBytesMax bounds the same copies by their size: rows of large
// requests (a statement of 1 MiB, a body) would make 4 batches of 10,000
// rows hold over a gigabyte during a ClickHouse outage. (What the soak's
// outage held, profiled, is in docs/SOAK.md, "Memory, profiled".)
const queuedBytesMax = 64 << 20

// rowStructBytes is what a Row takes in memory besides its strings and
// maps (456 bytes), counted towards queuedBytesMax.
const rowStructBytes = int64(unsafe.Sizeof(Row{}))

// OpenPipeline opens the spool and starts the writer and the shipper. The
// store may be unreachable: rows wait in the spool.
func OpenPipeline(o PipelineOptions) (*Pipeline, error) {
	if o.BatchRows <= 0 {
		o.BatchRows = 10_000
	}
	if o.BatchAge <= 0 {
		o.BatchAge = time.Second
	}
	if o.OnFull == "" {
		o.OnFull = "refuse"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Spool.Logger == nil {
		o.Spool.Logger = o.Log
	}
	sp, err := spool.Open(o.Spool)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	maxBytes := o.Spool.MaxBytes
	if maxBytes <= 0 {
		maxBytes = spool.DefaultMaxBytes
	}
	p := &Pipeline{o: o, sp: sp, log: o.Log, replay: true,
		wake: make(chan struct{}, 1), ship: make(chan struct{}, 1), stop: make(chan struct{}),
		spoolBytes: sp.Size(), rowBytes: 1024, batchSeconds: newBatchHistogram(),
		limits: [3]int64{maxBytes / 16 * 13, maxBytes / 16 * 14, maxBytes / 16 * 15}}
	p.halt = p.stop
	p.writerWG.Add(1)
	go p.writer()
	p.shipWG.Add(1)
	go p.shipper()
	return p, nil
}

// Admit reports ErrFull while the spool is past its ordinary tier (see
// tierOf) and on_full is "refuse", so that protocols refuse new work
// before doing it; the refusal's own row then goes to the reserve.
func (p *Pipeline) Admit() error {
	if p.o.OnFull == "drop" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refusing || p.overLocked(p.limits[tierOrdinary]) {
		return ErrFull
	}
	return nil
}

// Admission tiers: the limit, in estimated spool bytes, up to which a row
// of each kind is accepted. The spool's cap is split so:
//
//	0 .. 13/16   every row (and Admit: new work)
//	.. 14/16     the reserve: session open rows, approval decisions and
//	             minimal rows (Reserved), so that a request refused
//	             because the trail is full still has its row
//	.. 15/16     session close rows, so that a session that opened in
//	             the trail closes there
//	.. 16/16     headroom for the estimate (rows are counted at their
//	             average size until they are encoded)
//
// A sixteenth of the default 1 GiB cap is 64 MiB: about 200,000 minimal
// rows of 300 bytes. Past the close tier every row is refused (or
// dropped), and Record's caller records nothing for it.
const (
	tierOrdinary = iota
	tierReserved
	tierClose
)

func tierOf(r *Row) int {
	switch {
	case r.Kind == KindSessionClose:
		return tierClose
	case Reserved(r):
		return tierReserved
	}
	return tierOrdinary
}

// overLocked reports whether one more row would pass limit.
func (p *Pipeline) overLocked(limit int64) bool {
	return p.overLockedBy(p.rowBytes, limit)
}

// overLockedBy reports whether a row of size bytes would pass limit.
func (p *Pipeline) overLockedBy(size, limit int64) bool {
	return p.full || p.spoolBytes+p.pendingBytes+p.inflightBytes+size > limit
}

// sizeOf estimates a row's size in the spool (AppendRow's encoding plus
// framing) from its strings, without encoding it: over by a little, never
// under by much.
func sizeOf(r *Row) int64 {
	n := 160 + len(r.EventID) + len(r.GatewayID) + len(r.SessionID) + len(r.Protocol) + len(r.Listener) + len(r.Target) +
		len(r.Kind) + len(r.RemoteAddr) + len(r.Issuer) + len(r.Subject) + len(r.Email) + len(r.AccessRule) +
		len(r.Verdict) + len(r.Plugin) + len(r.Reason) + len(r.Status) + len(r.Error) + len(r.ApprovalID) +
		len(r.Approver) + len(r.PrevHash) + len(r.RowHash) + len(r.Signature)
	for _, g := range r.Groups {
		n += len(g) + 2
	}
	for _, m := range [...]map[string]string{r.Claims, r.Request, r.Annotations} {
		for k, v := range m {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// Record accepts a row. It returns ErrFull (on_full = "refuse") or drops
// the row and counts it (on_full = "drop") while the spool is past the
// row's tier: a protocol then records Minimal(r) in r's place, which the
// reserve takes.
func (p *Pipeline) Record(r Row) error {
	_, err := p.record(r, false)
	return err
}

// RecordTicket is Record for a synced row: it returns the row's ticket
// and wakes the writer, which appends and fsyncs it with every row that
// arrived meanwhile (see WaitDurable).
func (p *Pipeline) RecordTicket(r Row) (Ticket, error) {
	return p.record(r, true)
}

func (p *Pipeline) record(r Row, synced bool) (Ticket, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	tier := tierOf(&r)
	size := sizeOf(&r)
	if p.overLockedBy(size, p.limits[tier]) {
		if tier == tierOrdinary && p.o.OnFull != "drop" {
			p.refusing = true
		}
		p.mu.Unlock()
		if p.o.OnFull == "drop" {
			n := p.stats.dropped.Add(1)
			if n == 1 || n%1000 == 0 {
				p.log.Error("audit: spool full, dropping rows (on_full = \"drop\")", "dropped", n)
			}
			return 0, nil
		}
		p.stats.refused.Add(1)
		return 0, ErrFull
	}
	inReserve := tier != tierOrdinary && p.overLocked(p.limits[tierOrdinary])
	p.pending = append(p.pending, r)
	p.pendingBytes += size
	n := len(p.pending)
	p.tickets++
	t := Ticket(p.tickets)
	if synced {
		p.syncWant = p.tickets
	}
	p.mu.Unlock()
	p.stats.accepted.Add(1)
	if inReserve {
		p.stats.reserved.Add(1)
	}
	// The writer's ticker picks rows up within writeEvery; waking it for
	// every first row would hand the lock back and forth with it. A
	// synced row has a caller waiting: the writer goes now.
	if synced || n >= 512 {
		signal(p.wake)
	}
	return t, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// writeEvery is how long an accepted spooled row may wait before it is in
// the spool: the window a SIGKILL could lose (durability "spooled"). A
// synced row (RecordTicket) wakes the writer at once.
const writeEvery = 2 * time.Millisecond

func (p *Pipeline) writer() {
	defer p.writerWG.Done()
	t := time.NewTicker(writeEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.writeOnce()
			return
		case <-p.wake:
		case <-t.C:
		}
		p.writeOnce()
		p.syncOnce()
	}
}

// writeOnce moves pending rows into the spool, in chunks, and queues them
// for the shipper. Rows that do not fit stay pending: nothing accepted is
// lost, and new rows are refused (or dropped) until they fit.
func (p *Pipeline) writeOnce() {
	p.mu.Lock()
	rows := p.pending
	if len(rows) == 0 {
		p.mu.Unlock()
		return
	}
	// The next buffer starts at this one's size, so Record rarely grows
	// it (growing copies every row, under the lock).
	p.pending = make([]Row, 0, min(max(len(rows), 64), maxPendingHint))
	p.inflightBytes, p.pendingBytes = p.pendingBytes, 0
	p.mu.Unlock()
	if cap(rows) > 2*len(rows) {
		// The queue keeps its rows by slices of this buffer, and a slice
		// keeps the whole buffer alive: a tick of one row would pin 64
		// rows' worth (29 KiB), so that 40,000 rows queued one per tick
		// during an outage would pin 1.2 GB, which neither queuedBatches
		// nor queuedBytesMax sees. Rows move to a buffer of their size.
		rows = slices.Clone(rows)
	}
	defer func() {
		p.mu.Lock()
		p.inflightBytes = 0
		p.mu.Unlock()
	}()
	const chunk = 1000
	n := min(len(rows), chunk)
	for len(rows) > 0 {
		n = min(len(rows), n)
		part := rows[:n]
		// One buffer for the chunk's records; the spool copies it out.
		payloads := make([][]byte, n)
		buf := p.encBuf[:0]
		for i := range part {
			start := len(buf)
			buf = AppendRow(buf, &part[i])
			payloads[i] = buf[start:len(buf):len(buf)]
		}
		size := len(buf) + 8*n
		if cap(buf) <= maxKeptEncBuf {
			p.encBuf = buf
		}
		last, err := p.sp.AppendBatch(payloads)
		if errors.Is(err, spool.ErrFull) && n > 1 {
			// A batch is appended whole or not at all: the rows that fit
			// go in, in smaller batches, so that the reserve's rows are
			// not held back by a large chunk.
			n /= 2
			continue
		}
		if err != nil {
			p.mu.Lock()
			p.pending = append(rows, p.pending...)
			p.pendingBytes += p.inflightBytes
			p.inflightBytes = 0
			wasFull := p.full
			p.full = errors.Is(err, spool.ErrFull)
			p.mu.Unlock()
			if !p.full || !wasFull {
				p.log.Error("audit: spool append failed; rows kept in memory", "err", err, "rows", len(rows))
			}
			return
		}
		p.stats.spooled.Add(uint64(n))
		p.mu.Lock()
		p.spooledT += uint64(n)
		p.full = false
		var partBytes int64
		for i := range part {
			partBytes += sizeOf(&part[i])
		}
		p.inflightBytes -= partBytes
		// In memory a queued row is its Row too, not only its strings.
		memBytes := partBytes + int64(n)*rowStructBytes
		p.spoolBytes = p.sp.Size()
		p.rowBytes = max(int64(size/n), 64)
		if p.queued+n > queuedBatches*p.o.BatchRows || p.queuedBytes+memBytes > queuedBytesMax {
			// The store is away or slower than the load: keep memory
			// bounded. What is queued still ships from memory; the rest
			// is read back from the spool once the queue is drained.
			p.replay = true
		} else if !p.replay {
			p.queue = append(p.queue, shipped{rows: part, last: last, at: time.Now(), bytes: memBytes})
			p.queued += n
			p.queuedBytes += memBytes
		}
		p.mu.Unlock()
		signal(p.ship)
		rows = rows[n:]
		n = chunk
	}
}

func (p *Pipeline) shipper() {
	defer p.shipWG.Done()
	pinger, _ := p.o.Store.(Pinger)
	probeGap := 100 * time.Millisecond
	var nextProbe time.Time
	if pinger != nil {
		// Before the first row: an outage at start is reported at once.
		if p.probe(pinger) {
			probeGap = 0
		}
		nextProbe = time.Now().Add(probeGap)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.ship:
		case <-t.C:
		}
		if !p.shipOnce(false) {
			return
		}
		// Rows retry by themselves (insert); an idle pipeline pings a
		// store it saw down, with backoff, until it answers.
		if pinger != nil && p.storeDown() && time.Now().After(nextProbe) {
			if p.probe(pinger) {
				probeGap = 100 * time.Millisecond
			} else {
				probeGap = min(max(probeGap*2, 100*time.Millisecond), 5*time.Second)
			}
			nextProbe = time.Now().Add(probeGap)
		}
	}
}

// probe pings the store and records the outcome; true means it answered.
func (p *Pipeline) probe(pg Pinger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := pg.Ping(ctx)
	cancel()
	if err != nil {
		p.storeFailed(err)
		return false
	}
	p.storeOK()
	return true
}

func (p *Pipeline) storeDown() bool {
	h := &p.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// storeFailed records a failed insert or ping and logs the outage: loud
// at its start, then at growing intervals.
func (p *Pipeline) storeFailed(err error) {
	h := &p.health
	now := time.Now()
	h.mu.Lock()
	h.lastErr = err.Error()
	if !h.down {
		h.down, h.downSince, h.logGap, h.nextLog = true, now, outageLogFirst, now.Add(outageLogFirst)
		h.mu.Unlock()
		p.stats.outages.Add(1)
		p.log.Error("audit: the audit store is unreachable; rows are kept in the spool and shipped when it answers",
			"err", err, "spool_bytes", p.sp.Size(), "spool_max_bytes", p.maxBytes())
		return
	}
	if now.Before(h.nextLog) {
		h.mu.Unlock()
		return
	}
	since := h.downSince
	h.logGap = min(h.logGap*2, outageLogMax)
	h.nextLog = now.Add(h.logGap)
	h.mu.Unlock()
	p.log.Error("audit: the audit store is still unreachable; rows are kept in the spool",
		"err", err, "down_for", now.Sub(since).Round(time.Second).String(), "spool_bytes", p.sp.Size(), "spool_max_bytes", p.maxBytes())
}

// storeOK records a successful insert or ping, and the end of an outage.
func (p *Pipeline) storeOK() {
	h := &p.health
	h.mu.Lock()
	if !h.down {
		h.mu.Unlock()
		return
	}
	since := h.downSince
	h.down, h.downSince, h.lastErr = false, time.Time{}, ""
	h.mu.Unlock()
	p.log.Warn("audit: the audit store answers again; shipping the spooled rows",
		"down_for", time.Since(since).Round(time.Millisecond).String(), "spool_bytes", p.sp.Size())
}

func (p *Pipeline) maxBytes() int64 {
	if p.o.Spool.MaxBytes > 0 {
		return p.o.Spool.MaxBytes
	}
	return spool.DefaultMaxBytes
}

// shipOnce ships queued batches that are full or old enough (all of them
// when draining) and, once the queue is empty, replays the spool if rows
// bypassed the queue (at start, or when it overflowed). False means stop.
func (p *Pipeline) shipOnce(draining bool) bool {
	for {
		p.mu.Lock()
		// Replay once the queue has drained: the queue holds the rows
		// right after the acknowledged ones, so the replay then starts
		// where the queue ended instead of reading (and decoding) them
		// again.
		if len(p.queue) == 0 && p.replay {
			p.replay = false
			p.mu.Unlock()
			return p.replaySpool()
		}
		if len(p.queue) == 0 || (!draining && p.queued < p.o.BatchRows && time.Since(p.queue[0].at) < p.o.BatchAge) {
			p.mu.Unlock()
			return true
		}
		var batch []Row
		if len(p.queue) == 1 {
			batch = p.queue[0].rows // shipped as queued, no copy
		} else {
			batch = make([]Row, 0, min(p.queued, p.o.BatchRows))
		}
		var last spool.Pos
		i := 0
		for ; i < len(p.queue) && (i == 0 || len(batch)+len(p.queue[i].rows) <= p.o.BatchRows); i++ {
			if len(p.queue) > 1 {
				batch = append(batch, p.queue[i].rows...)
			}
			last = p.queue[i].last
		}
		p.mu.Unlock()
		if !p.insert(batch, last) {
			return false
		}
		p.mu.Lock()
		if len(p.queue) >= i { // a replay may have cleared the queue meanwhile
			for _, q := range p.queue[:i] {
				p.queuedBytes -= q.bytes
			}
			p.queue = p.queue[i:]
			p.queued -= len(batch)
		}
		p.mu.Unlock()
	}
}

// replaySpool ships everything the spool holds beyond the last
// acknowledged row, in batches.
func (p *Pipeline) replaySpool() bool {
	var batch []Row
	var last spool.Pos
	stopped := false
	err := p.sp.Replay(func(pos spool.Pos, payload []byte) error {
		r, err := DecodeRow(payload)
		if err != nil {
			p.log.Error("audit: spooled row not decodable; skipped", "pos", pos.String(), "err", err)
			return nil
		}
		if batch == nil {
			batch = make([]Row, 0, p.o.BatchRows)
		}
		batch = append(batch, r)
		last = pos
		if len(batch) >= p.o.BatchRows {
			if !p.insert(batch, last) {
				stopped = true
				return errStopped
			}
			batch = nil
		}
		return nil
	})
	if stopped {
		return false
	}
	if err != nil {
		p.log.Error("audit: spool replay failed; will retry", "err", err)
		p.mu.Lock()
		p.replay = true
		p.mu.Unlock()
		return true
	}
	if len(batch) > 0 {
		return p.insert(batch, last)
	}
	return true
}

var errStopped = errors.New("stopped")

// insert retries a batch with backoff until the store takes it, then
// acknowledges it in the spool. False means the pipeline is stopping.
func (p *Pipeline) insert(rows []Row, last spool.Pos) bool {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := p.o.Store.Insert(ctx, rows)
		cancel()
		if err == nil {
			p.batchSeconds.Observe(time.Since(start).Seconds())
			p.storeOK()
			break
		}
		p.stats.retries.Add(1)
		p.storeFailed(err)
		select {
		case <-p.halt:
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	p.stats.shipped.Add(uint64(len(rows)))
	if last.Compare(p.acked) > 0 {
		if err := p.sp.Ack(last); err != nil {
			p.log.Error("audit: spool ack failed; rows may be sent again", "err", err)
		} else {
			p.acked = last
			p.mu.Lock()
			p.spoolBytes = p.sp.Size()
			p.refusing = false
			p.mu.Unlock()
		}
	}
	return true
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() PipelineStats {
	p.health.mu.Lock()
	down, since, lastErr := p.health.down, p.health.downSince, p.health.lastErr
	p.health.mu.Unlock()
	p.mu.Lock()
	queued, pending, queuedRows := p.queuedBytes, len(p.pending), p.queued
	p.mu.Unlock()
	return PipelineStats{QueuedBytes: queued, PendingRows: pending, QueuedRows: queuedRows,
		Accepted: p.stats.accepted.Load(), Spooled: p.stats.spooled.Load(), Shipped: p.stats.shipped.Load(), Dropped: p.stats.dropped.Load(),
		Refused: p.stats.refused.Load(), Retries: p.stats.retries.Load(), SpoolBytes: p.sp.Size(), SpoolPending: p.sp.Stats().Pending, SpoolMaxBytes: p.maxBytes(),
		StoreReachable: !down, StoreDownSince: since, StoreError: lastErr, Reserved: p.stats.reserved.Load(), StoreOutages: p.stats.outages.Load(),
		Fsyncs: p.stats.fsyncs.Load(), FsyncedRows: p.stats.fsyncedRows.Load(),
	}
}

// Close stops accepting rows, writes what is pending to the spool, ships
// what it can within the grace period of ctx, and closes the spool. Rows
// not shipped stay in the spool for the next start.
func (p *Pipeline) Close() error { return p.CloseContext(context.Background()) }

// CloseContext is Close with a deadline for the final shipping.
func (p *Pipeline) CloseContext(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	// Stop the shipper first, then the writer (which flushes to the spool).
	close(p.stop)
	p.shipWG.Wait()
	p.writerWG.Wait()
	if n := len(p.pending); n > 0 {
		p.log.Error("audit: rows could not be written to the spool at shutdown and are lost", "rows", n)
	}
	// A last attempt to ship, bounded by ctx; what fails stays spooled.
	// Nothing else runs now, so halt can be swapped safely.
	p.halt = ctx.Done()
	p.shipOnce(true)
	errSpool := p.sp.Close()
	p.settleDurable(errSpool)
	errStore := p.o.Store.Close()
	return errors.Join(errSpool, errStore)
}
