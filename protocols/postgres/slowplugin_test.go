package postgres

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// blockRows holds every pg.rows event until release is closed, as a
// slow plugin would.
type blockRows struct{ entered, release chan struct{} }

func (b blockRows) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	if ev.Kind == "pg.rows" {
		select {
		case b.entered <- struct{}{}:
		default:
		}
		<-b.release
	}
	return event.Verdict{Action: event.Allow}, nil
}

// A plugin that takes its time over a result's rows does not stop the
// client loop: the client's next statement reaches the server meanwhile
// (the relay calls the chain without the session's lock).
func TestSlowPluginDoesNotStopClientLoop(t *testing.T) {
	chain := blockRows{entered: make(chan struct{}, 1), release: make(chan struct{})}
	l := &Listener{cfg: config.Listener{Name: "slow", MaxMessageBytes: 1 << 16},
		deps: gate.Deps{Recorder: nopRecorder{}, Chain: chain, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	cli, cliPeer := net.Pipe()
	up, upPeer := net.Pipe()
	queries := make(chan string, 4)
	go func() {
		r := &msgReader{r: upPeer, buf: make([]byte, 4096), max: maxServerMessage}
		for {
			m, err := r.next()
			if err != nil || m[0] == 'X' {
				upPeer.Close()
				return
			}
			if m[0] != 'Q' {
				continue
			}
			queries <- cstring(m[5:])
			var out []byte
			out, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}}).Encode(out)
			out, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}).Encode(out)
			out = appendMsg(out, 'C', []byte("SELECT 1\x00"))
			out = append(out, 'Z', 0, 0, 0, 5, 'I')
			if _, err := upPeer.Write(out); err != nil {
				return
			}
		}
	}()
	go io.Copy(io.Discard, cliPeer)
	gs := l.deps.NewSession(gate.SessionInfo{Protocol: "postgres", Listener: "slow"})
	s := &session{l: l, gs: gs, id: gs.ID(), targetName: "t", target: &target{}, client: cli, up: up, opened: time.Now(), ctx: context.Background(), cancel: func() {}}
	s.be = pgproto3.NewBackend(cli, cli)
	done := make(chan struct{})
	go func() { s.run(); close(done) }()
	defer func() {
		cliPeer.Close()
		<-done
	}()

	send := func(sql string) {
		b, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		go cliPeer.Write(b)
	}
	wait := func(what string, c <-chan struct{}) {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
	}
	send("SELECT 1")
	if q := <-queries; q != "SELECT 1" {
		t.Fatalf("first query: %q", q)
	}
	wait("pg.rows call", chain.entered)
	send("SELECT 2")
	got := make(chan struct{})
	go func() {
		if <-queries == "SELECT 2" {
			close(got)
		}
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		close(chain.release)
		t.Fatal("the client's next statement waited for the plugin: the relay held the session's lock across the chain call")
	}
	close(chain.release)
}

// memRecorder keeps rows, for the tests that drive a session directly.
type memRecorder struct {
	mu   sync.Mutex
	rows []gate.Row
}

func (m *memRecorder) Record(r gate.Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, r)
	return nil
}
func (m *memRecorder) Close() error { return nil }

// A statement queued after the upstream connection ended (the relay has
// recorded the ones queued before) still gets its row when the session
// ends: every statement the gateway read is in the trail.
func TestStatementQueuedAfterUpstreamLossHasARow(t *testing.T) {
	rec := &memRecorder{}
	l := &Listener{cfg: config.Listener{Name: "lost"}, deps: gate.Deps{Recorder: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	gs := l.deps.NewSession(gate.SessionInfo{Protocol: "postgres", Listener: "lost"})
	s := &session{l: l, gs: gs, id: gs.ID(), targetName: "t", target: &target{}, opened: time.Now(), ctx: context.Background(), cancel: func() {}}
	s.settled = sync.NewCond(&s.mu)
	st := &stmt{start: time.Now(), fields: map[string]string{"sql": "UPDATE t SET x = 1"}}
	s.mu.Lock()
	s.upGone = true
	s.pushLocked(&op{kind: opQuery, st: st})
	s.mu.Unlock()
	s.recordUnanswered()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rows) != 1 || rec.rows[0].Kind != "pg.query" || rec.rows[0].Request["sql"] != "UPDATE t SET x = 1" || !strings.Contains(rec.rows[0].Error, "connection to the target was lost") {
		t.Fatalf("rows: %+v", rec.rows)
	}
}
