package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

type nopRecorder struct{}

func (nopRecorder) Record(audit.Row) error { return nil }
func (nopRecorder) Close() error           { return nil }

// denyDrops denies any statement whose SQL mentions DROP and masks every
// row value that contains "secret", so that both chain paths run.
type denyDrops struct{}

func (denyDrops) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	if bytes.Contains([]byte(ev.Fields["sql"]), []byte("DROP")) {
		return event.Verdict{Action: event.Deny, Reason: "no"}, nil
	}
	if ev.Rows != nil {
		for _, r := range ev.Rows.Values {
			for i := range r {
				if bytes.Contains(r[i].Data, []byte("secret")) {
					r[i] = event.Cell{Data: []byte("****")}
				}
			}
		}
	}
	return event.Verdict{Action: event.Allow}, nil
}

// fakeUpstream answers like a tiny server: ParseComplete, BindComplete,
// a row and CommandComplete for Execute, ReadyForQuery for Sync and Query.
func fakeUpstream(c net.Conn) {
	r := &msgReader{r: c, buf: make([]byte, 4096), max: maxServerMessage}
	row, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("a secret"), nil}}).Encode(nil)
	for {
		m, err := r.next()
		if err != nil {
			c.Close()
			return
		}
		var out []byte
		switch m[0] {
		case 'P':
			out = append(out, '1', 0, 0, 0, 4)
		case 'B':
			out = append(out, '2', 0, 0, 0, 4)
		case 'C':
			out = append(out, '3', 0, 0, 0, 4)
		case 'D':
			out = append(out, 'n', 0, 0, 0, 4)
		case 'E':
			out = append(out, row...)
			out = appendMsg(out, 'C', []byte("SELECT 1\x00"))
		case 'Q':
			out, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}, {Name: []byte("b")}}}).Encode(out)
			out = append(out, row...)
			out = appendMsg(out, 'C', []byte("SELECT 1\x00"))
			out = append(out, 'Z', 0, 0, 0, 5, 'I')
		case 'S':
			out = append(out, 'Z', 0, 0, 0, 5, 'I')
		case 'X':
			c.Close()
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// FuzzClientMessages feeds arbitrary bytes, as a logged-in client's
// messages, into the session loop in front of a fake upstream: no panic,
// no hang, and the session always ends.
func FuzzClientMessages(f *testing.F) {
	enc := func(ms ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range ms {
			b, _ = m.Encode(b)
		}
		return b
	}
	f.Add(enc(&pgproto3.Query{String: "SELECT 1"}))
	f.Add(enc(&pgproto3.Query{String: "DROP TABLE x"}, &pgproto3.Query{String: "SELECT 2"}))
	f.Add(enc(&pgproto3.Parse{Query: "SELECT $1"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	f.Add(enc(&pgproto3.Parse{Name: "s", Query: "DROP TABLE t"}, &pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Execute{}, &pgproto3.Flush{}, &pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}))
	f.Add(enc(&pgproto3.CopyData{Data: []byte("1\t2\n")}, &pgproto3.CopyDone{}, &pgproto3.FunctionCall{Function: 1}))
	f.Add([]byte{'B', 0, 0, 0, 7, 0, 0, 0xff})
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &Listener{cfg: listenerConfig{Listener: gate.Listener{Name: "fuzz"}, ListenerOptions: ListenerOptions{MaxMessageBytes: 1 << 16}},
			deps: gate.Deps{Recorder: nopRecorder{}, Chain: denyDrops{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		cli, cliPeer := net.Pipe()
		up, upPeer := net.Pipe()
		go fakeUpstream(upPeer)
		go io.Copy(io.Discard, cliPeer)
		gs := l.deps.NewSession(gate.SessionInfo{Protocol: "postgres", Listener: "fuzz"})
		s := &session{l: l, gs: gs, id: gs.ID(), targetName: "t", target: &target{}, client: cli, up: up, opened: time.Now(), ctx: context.Background(), cancel: func() {}}
		s.be = pgproto3.NewBackend(bytes.NewReader(data), cli)
		s.be.SetMaxBodyLen(l.cfg.MaxMessageBytes)
		done := make(chan struct{})
		go func() { s.run(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
		cliPeer.Close()
		upPeer.Close()
	})
}

func appendMsg(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}

// FuzzServerMessages feeds arbitrary bytes as the upstream's answers to a
// client's simple and extended statements (with row masking on, so rows
// are decoded): no panic, no hang, and the session always ends.
func FuzzServerMessages(f *testing.F) {
	enc := func(ms ...pgproto3.BackendMessage) []byte {
		var b []byte
		for _, m := range ms {
			b, _ = m.Encode(b)
		}
		return b
	}
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("secret")}, {Name: []byte("n"), Format: 1}}}
	row := &pgproto3.DataRow{Values: [][]byte{[]byte("a secret"), {0, 0, 0, 1}}}
	f.Add(enc(rd, row, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, rd, row, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'}))
	f.Add(enc(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: "x"}, &pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01"}, &pgproto3.ReadyForQuery{TxStatus: 'E'}))
	f.Add(enc(&pgproto3.CopyOutResponse{ColumnFormatCodes: []uint16{0}}, &pgproto3.CopyData{Data: []byte("a\n")}, &pgproto3.CopyDone{}))
	f.Add([]byte{'D', 0, 0, 0, 10, 0, 1, 0xff, 0xff, 0xff, 0xfe})
	f.Add([]byte{'T', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &Listener{cfg: listenerConfig{Listener: gate.Listener{Name: "fuzz"}, ListenerOptions: ListenerOptions{MaxMessageBytes: 1 << 16}},
			deps: gate.Deps{Recorder: nopRecorder{}, Chain: denyDrops{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		cli, cliPeer := net.Pipe()
		up, upPeer := net.Pipe()
		var script []byte
		for _, m := range []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT secret, n FROM t"},
			&pgproto3.Parse{Query: "SELECT secret, n FROM t"}, &pgproto3.Bind{ResultFormatCodes: []int16{0, 1}},
			&pgproto3.Execute{}, &pgproto3.Sync{}, &pgproto3.Query{String: "COPY t TO STDOUT"}} {
			script, _ = m.Encode(script)
		}
		go io.Copy(io.Discard, cliPeer) // what the client receives
		go cliPeer.Write(script)        // what it sends
		go func() {
			// The upstream reads what comes and answers with the fuzz
			// bytes; once they are consumed (or the session ended), the
			// client hangs up.
			go io.Copy(io.Discard, upPeer)
			upPeer.Write(data)
			cliPeer.Close()
			upPeer.Close()
		}()
		gs := l.deps.NewSession(gate.SessionInfo{Protocol: "postgres", Listener: "fuzz"})
		s := &session{l: l, gs: gs, id: gs.ID(), targetName: "t", target: &target{}, client: cli, up: up, opened: time.Now(), ctx: context.Background(), cancel: func() {}}
		s.be = pgproto3.NewBackend(cli, cli)
		done := make(chan struct{})
		go func() { s.run(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("session did not end:\n%s", buf[:runtime.Stack(buf, true)])
		}
		cliPeer.Close()
	})
}

// FuzzSettingRequest: the look for explicit encoding and
// standard_conforming_strings changes never panics, and whatever it
// refuses names a value the gateway does not allow.
func FuzzSettingRequest(f *testing.F) {
	for _, s := range []string{"SET client_encoding = 'SJIS'", "set names big5", "SELECT set_config('client_encoding', 'gbk', false)",
		"SET standard_conforming_strings TO off", "SET client_encoding TO DEFAULT", "select names from t", "SET \"client_encoding\" = utf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		why := settingRequest(sql)
		if why != "" && !strings.Contains(why, "refused by this gateway") {
			t.Fatalf("%q: %q", sql, why)
		}
		if why != settingRequest(sql) {
			t.Fatal("not deterministic")
		}
	})
}

// A text parameter that reads \x41 and a binary parameter 'A' are
// different statements: for the chain, the audit row and an approval.
func TestBindFieldsTellTextFromBinary(t *testing.T) {
	text := bindFields("SELECT $1", &pgproto3.Bind{Parameters: [][]byte{[]byte(`\x41`)}})
	bin := bindFields("SELECT $1", &pgproto3.Bind{ParameterFormatCodes: []int16{pgproto3.BinaryFormat}, Parameters: [][]byte{[]byte("A")}})
	if text["param.1"] != bin["param.1"] || text["param.1.format"] == bin["param.1.format"] || bin["param.1.format"] != "binary" {
		t.Fatalf("text %v, binary %v", text, bin)
	}
}
