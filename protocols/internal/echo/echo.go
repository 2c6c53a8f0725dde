// Package echo is the smallest protocol written on the gate layer, used
// only by tests: it shows a protocol author every part of the layer
// (host/gate's package doc lists the steps) and lets the layer's promises
// be tested end to end without a real wire protocol.
//
// The wire protocol is lines of text. The client's first line is
// "AUTH <token>"; the gateway answers "READY <session>" or "ERR <reason>"
// and hangs up. Every later line is a request: the gateway answers
// "OK <line>" (the line as the chain left it, and its reply as the chain
// masked it), "ERR <reason>" when it is refused, and "HELD <id> <url>"
// before a held line waits for a person.
package echo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// Event kinds: a line the client sent, and the reply going back.
const (
	KindLine  = "echo.line"
	KindReply = "echo.reply"
)

// maxLine bounds a line: a longer one ends the connection with an error.
const maxLine = 64 << 10

// Listener serves the echo protocol for one target.
type Listener struct {
	name, target string
	deps         gate.Deps
	ln           net.Listener
	wg           sync.WaitGroup
}

// New prepares a listener named name in front of target.
func New(name, target string, deps gate.Deps) *Listener {
	return &Listener{name: name, target: target, deps: deps}
}

// Start listens on addr ("127.0.0.1:0" for any port) and serves.
func (l *Listener) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("echo: listener %s: %w", l.name, err)
	}
	l.ln = ln
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.serve(c)
			}()
		}
	}()
	return nil
}

// Addr is the bound address.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Close stops listening and waits for the connections to end.
func (l *Listener) Close() error {
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func (l *Listener) serve(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := bufio.NewScanner(c)
	in.Buffer(make([]byte, 4096), maxLine)
	out := bufio.NewWriter(c)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}

	// One session per connection: opened whatever happens next, so that
	// a refused login leaves a row too.
	s := l.deps.NewSession(gate.SessionInfo{Protocol: "echo", Listener: l.name, Remote: c.RemoteAddr().String()})
	s.SetTarget(l.target, "")
	lines := 0
	closeErr := ""
	defer func() { s.Close(fmt.Sprintf("%d lines", lines), closeErr) }()
	refuse := func(why string) {
		open := s.Row("")
		open.Verdict, open.Error = "deny", why
		s.Open(open)
		closeErr = why
		say("ERR %s", why)
	}

	if !in.Scan() {
		refuse("no AUTH line")
		return
	}
	tok, _ := strings.CutPrefix(in.Text(), "AUTH ")
	p, err := l.deps.Verify(ctx, strings.TrimSpace(tok))
	if err != nil {
		kind, reason := gate.AuthFailure(err)
		if kind == gate.AuthUnavailable {
			s.Log().Warn("token not verified", "err", err)
		}
		refuse("auth: " + reason)
		return
	}
	s.SetPrincipal(p)
	d := l.deps.Authorize(p, gate.AccessRequest{Target: l.target, Verb: "LINE", Resource: "/"})
	if !d.Allowed {
		refuse("access denied: " + d.Reason)
		return
	}
	s.SetTarget(l.target, d.Rule)
	if err := s.Open(s.Row("")); err != nil {
		say("ERR the audit trail cannot take the session's row")
		return
	}
	say("READY %s", s.ID())

	for in.Scan() {
		lines++
		l.line(ctx, s, p, in.Text(), say)
	}
	if err := in.Err(); err != nil {
		closeErr = "read: " + err.Error()
		if errors.Is(err, bufio.ErrTooLong) {
			say("ERR a line is longer than %d bytes", maxLine)
		}
	}
}

// line decides one request, answers it and records its row.
func (l *Listener) line(ctx context.Context, s *gate.Session, p *event.Principal, text string, say func(string, ...any)) {
	ev := &event.Event{Phase: event.Request, Protocol: "echo", Kind: KindLine, Target: l.target, Principal: p,
		Fields: map[string]string{"line": text}}
	var ap gate.Approval
	dec := s.Decide(ctx, ev, func(ctx context.Context, ev *event.Event, v event.Verdict) (event.Verdict, bool) {
		v, a, ok := s.AskApproval(ctx, ev, v, gate.Ask{Notify: func(id, url string) { say("HELD %s %s", id, url) }})
		ap = a
		return v, ok
	})
	defer dec.Done()
	row := s.Row(KindLine)
	row.Request = ev.Fields
	row.ApprovalID, row.Approver = ap.ID, ap.Approver
	defer func() { s.Record(row) }()
	if !dec.Allowed {
		row.SetVerdict(dec.Verdict)
		row.Status, row.Error = "refused", "denied: "+dec.Reason
		say("ERR %s", dec.Reason)
		return
	}
	if nv, ok := dec.Verdict.Changes["line"]; ok {
		text = nv
	}
	// The "server": it echoes the line. Its reply passes the chain that
	// decided the request.
	reply := &event.Event{Phase: event.Response, Protocol: "echo", Kind: KindReply, Target: l.target, Principal: p,
		Fields: map[string]string{"line": text}}
	v := dec.Process(ctx, reply)
	verdict := dec.Verdict
	verdict.Annotations = append(verdict.Annotations, v.Annotations...)
	row.SetVerdict(verdict)
	if v.Action == event.Deny || v.Action == event.Hold {
		row.Status, row.Error = "withheld", "reply withheld: "+v.Reason
		say("ERR reply withheld: %s", v.Reason)
		return
	}
	if nv, ok := v.Changes["line"]; ok {
		text = nv
	}
	row.Status = "ok"
	say("OK %s", text)
}
