package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

const (
	// KindShell is an interactive shell: fields login, term, size
	// ("COLSxROWS"), env (the names passed on, one per line) and
	// env_refused (the names refused). Its row is recorded when the shell
	// ends, with the exit status and the bytes both ways.
	KindShell = "ssh.shell"
	// KindInput is a line submitted in a shell: fields line, login, argv,
	// commands, argv_error (as ssh.exec's, of the line; commands also
	// lists typed's when it differs), source ("echo": read from the
	// remote's echo; "keys": from the client's keys, nothing was echoed;
	// "screen": the remote's whole line, the prompt unknown) and typed
	// (the keys, when they differ from line).
	KindInput = "ssh.input"
)

// chanSetup is what a session channel asked for before its shell or
// command: a terminal and environment variables, passed on upstream.
type chanSetup struct {
	pty     *ptyRequest
	env     []envVar
	refused []string // env names refused (no values)
	logged  map[string]bool
}

type ptyRequest struct {
	Term                 string
	Cols, Rows, Wpx, Hpx uint32
	Modes                string
}

type envVar struct{ Name, Value string }

// maxEnv bounds the variables one channel passes on.
const maxEnv = 64

// envAllowed reports whether the listener's or the target's allow_env
// lists name.
func (c *conn) envAllowed(name string) bool {
	for _, list := range [][]string{c.l.opts.AllowEnv, c.target.opts.AllowEnv} {
		for _, g := range list {
			if gate.GlobMatch(g, name) {
				return true
			}
		}
	}
	return false
}

// setupRequest takes a pty-req, env or window-change that comes before
// the shell or command. It reports whether it handled r.
func (c *conn) setupRequest(r *xssh.Request, su *chanSetup) bool {
	reply := func(ok bool) {
		if r.WantReply {
			r.Reply(ok, nil)
		}
	}
	switch r.Type {
	case "pty-req":
		var p ptyRequest
		if xssh.Unmarshal(r.Payload, &p) != nil || len(p.Term) > 256 {
			reply(false)
			return true
		}
		su.pty = &p
		reply(true)
	case "window-change":
		var w struct{ Cols, Rows, Wpx, Hpx uint32 }
		if su.pty != nil && xssh.Unmarshal(r.Payload, &w) == nil {
			su.pty.Cols, su.pty.Rows, su.pty.Wpx, su.pty.Hpx = w.Cols, w.Rows, w.Wpx, w.Hpx
		}
		reply(false)
	case "env":
		var e envVar
		if xssh.Unmarshal(r.Payload, &e) != nil {
			reply(false)
			return true
		}
		if c.envAllowed(e.Name) && len(su.env) < maxEnv {
			su.env = append(su.env, e)
			reply(true)
			return true
		}
		// Refused without a word to the client, as OpenSSH does; the
		// name (never the value) is logged once and goes in the row.
		if su.logged == nil {
			su.logged = map[string]bool{}
		}
		if !su.logged[e.Name] && len(su.logged) < maxEnv {
			su.logged[e.Name] = true
			su.refused = append(su.refused, e.Name)
			c.sess.Log().Info("environment variable refused: not in allow_env", "name", e.Name, "target", c.target.name)
		}
		reply(false)
	default:
		return false
	}
	return true
}

// apply asks the upstream channel for the terminal and variables; the
// terminal's size is the recording's.
func (su *chanSetup) apply(up xssh.Channel, rec *gate.Recording) error {
	if su.pty != nil {
		rec.SetSize(int(min(su.pty.Cols, 1<<16)), int(min(su.pty.Rows, 1<<16)))
		ok, err := up.SendRequest("pty-req", true, xssh.Marshal(su.pty))
		if err != nil {
			return fmt.Errorf("terminal request: %w", err)
		}
		if !ok {
			return fmt.Errorf("the target refused a terminal")
		}
	}
	for _, e := range su.env {
		if _, err := up.SendRequest("env", false, xssh.Marshal(e)); err != nil {
			return fmt.Errorf("env request: %w", err)
		}
	}
	return nil
}

func (su *chanSetup) fields(login string) map[string]string {
	f := map[string]string{"login": login}
	if su.pty != nil {
		f["term"] = su.pty.Term
		f["size"] = strconv.FormatUint(uint64(su.pty.Cols), 10) + "x" + strconv.FormatUint(uint64(su.pty.Rows), 10)
	}
	var names []string
	for _, e := range su.env {
		names = append(names, e.Name)
	}
	if len(names) > 0 {
		f["env"] = strings.Join(names, "\n")
	}
	if len(su.refused) > 0 {
		f["env_refused"] = strings.Join(su.refused, "\n")
	}
	return f
}

// shell serves an interactive shell: checked for the verb "shell" and
// decided as an ssh.shell event, then relayed with each submitted line
// decided as an ssh.input event (input.go), and the output through the
// chain as exec's is.
func (c *conn) shell(ch xssh.Channel, reqs <-chan *xssh.Request, id uint64, su *chanSetup) {
	c.shells.Add(1)
	s := c.sess
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()

	// With a terminal the client shows stderr and stdout alike, and
	// lines end in CR LF.
	nl := "\n"
	if su.pty != nil {
		nl = "\r\n"
	}
	fields := su.fields(c.login)
	r := c.newRun(ch, KindShell, fields, nl)
	sig := &signals{rec: c.sess.Recording()}
	var scr atomic.Pointer[liveScreen]
	defer r.serve(reqs, cancel, func(req *xssh.Request) bool {
		if req.Type != "window-change" {
			return sig.request(req)
		}
		var w struct{ Cols, Rows, Wpx, Hpx uint32 }
		if xssh.Unmarshal(req.Payload, &w) != nil {
			return false
		}
		if l := scr.Load(); l != nil {
			l.resize(int(w.Cols))
		}
		return sig.windowChange(req.Payload)
	})()
	defer r.record()

	ev := &event.Event{Phase: event.Request, Protocol: "ssh", Kind: KindShell, Target: c.target.name, Principal: c.principal, Fields: fields}
	dec, ok := r.decide(ctx, VerbShell, ev)
	if !ok {
		return
	}
	defer dec.Done()

	upCh, why := c.openUpChannel(ctx, su, "shell", nil, "refused to start a shell")
	if why != "" {
		r.refuse(ExitUpstream, why)
		return
	}
	defer upCh.Close()
	if su.pty != nil {
		scr.Store(newLiveScreen(int(su.pty.Cols)))
	}
	sig.set(upCh)

	in := &inputGate{ctx: ctx, src: ch, scr: scr.Load(), decide: func(l submitted) bool { return c.decideLine(ctx, ch, nl, l) }}
	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		n, _ := io.Copy(upCh, s.Recording().InputReader(in))
		r.stdinN.Store(n)
		upCh.CloseWrite()
	}()
	screen, idle := scr.Load(), dec.Wants(KindOutput)
	r.outN, r.withheld = c.relayOutput(ctx, dec, upCh, ch, id, r.extra, func(fd int, src io.Reader) io.Reader {
		if fd == 0 && screen != nil {
			// The screen reads what the remote writes, to know the line.
			src = io.TeeReader(src, screen)
		}
		if idle {
			src = newIdleReader(src)
		}
		return src
	})
	r.exit = upCh.wait()
	switch {
	case r.withheld != "":
		c.tell(ch, termLine(nl, "tollgate: output withheld: "+r.withheld))
		sendExitStatus(ch, ExitDenied)
	case r.exit.kind != "":
		ch.SendRequest(r.exit.kind, false, r.exit.payload)
	}
	ch.CloseWrite()
	ch.Close()
	cancel() // a line waiting for its decision or approval gives up
	<-stdinDone
}

// holder asks for an approval and tells the client, on its terminal,
// where it waits.
func (c *conn) holder(ch xssh.Channel, nl string, row *gate.Row) gate.Holder {
	return func(ctx context.Context, ev *event.Event, v event.Verdict) (event.Verdict, bool) {
		v, ap, ok := c.sess.AskApproval(ctx, ev, v, gate.Ask{Notify: func(id, url string) {
			c.tell(ch, termLine(nl, "tollgate: held for approval "+id+": "+url+" (waiting for a person to decide)"))
		}})
		row.ApprovalID, row.Approver = ap.ID, ap.Approver
		return v, ok
	}
}

// decideLine decides one submitted shell line as an ssh.input event and
// records its row; a refusal is shown on the client's terminal.
func (c *conn) decideLine(ctx context.Context, ch xssh.Channel, nl string, l submitted) bool {
	s := c.sess
	start := time.Now()
	row := s.Row(KindInput)
	if l.source == "too-long" {
		why := fmt.Sprintf("a line longer than %d bytes is not accepted in a shell without a terminal", maxLine)
		row.Request = map[string]string{"login": c.login, "source": "keys"}
		row.Verdict, row.Status, row.Error = "deny", "refused", why
		s.Record(row)
		c.tell(ch, "tollgate: "+why+nl)
		return false
	}
	fields := inputFields(l, c.login)
	row.Request = fields
	if l.refuse != "" {
		// The gate's own refusal (input.go): no plugin is asked.
		row.Verdict, row.Status, row.Error = "deny", "refused", l.refuse
		row.DurationMicro = time.Since(start).Microseconds()
		s.Record(row)
		c.tell(ch, termLine(nl, "tollgate: denied: "+l.refuse))
		return false
	}
	ev := &event.Event{Phase: event.Request, Protocol: "ssh", Kind: KindInput, Target: c.target.name, Principal: c.principal, Fields: fields}
	dec := s.Decide(ctx, ev, c.holder(ch, nl, &row))
	defer dec.Done()
	allowed, why := dec.Allowed, dec.Reason
	if nv, ok := dec.Verdict.Changes["line"]; allowed && ok && nv != l.line {
		// The remote already holds the line as typed: a rewrite cannot
		// be applied, so the line does not run.
		allowed, why = false, "a plugin rewrote the line, and a shell line cannot be rewritten (run it with exec)"
	}
	row.SetVerdict(dec.Verdict)
	row.DurationMicro = time.Since(start).Microseconds()
	if allowed {
		row.Status = "sent"
	} else {
		row.Status, row.Error = "refused", why
		c.tell(ch, termLine(nl, "tollgate: denied: "+why))
	}
	s.Record(row)
	return allowed
}

// termLine is a message on its own line: on a terminal the cursor may be
// in the middle of the user's line, so it starts on a new one.
func termLine(nl, msg string) string {
	if nl == "\r\n" {
		return "\r\n" + msg + "\r\n"
	}
	return msg + "\n"
}

func inputFields(l submitted, login string) map[string]string {
	f := execFields(l.line, login)
	f["line"] = f["command"]
	delete(f, "command")
	f["source"] = l.source
	if l.typed != "" && l.typed != l.line {
		f["typed"] = l.typed
		// Both views' commands, so that a rule matching either stops
		// the line.
		tf := execFields(l.typed, login)
		seen := map[string]bool{}
		var all []string
		for _, list := range []string{f["commands"], tf["commands"]} {
			for _, cmd := range strings.Split(list, "\n") {
				if cmd != "" && !seen[cmd] {
					seen[cmd] = true
					all = append(all, cmd)
				}
			}
		}
		f["commands"] = strings.Join(all, "\n")
	}
	return f
}

// errIdle is what idleReader returns, once, when the remote paused.
var errIdle = errors.New("ssh: output paused")

// idleFlush is how long a shell's output must pause before the plugins'
// streams are ended (and what they hold back is shown): a secret the
// remote prints in two pieces with a longer pause in between is not
// masked across the pause.
const idleFlush = 500 * time.Millisecond

// idleReader reads src in a goroutine of its own and returns errIdle
// once when nothing came for idleFlush after something did. WriteTo
// drains it without pauses (pump's io.Copy of what is left).
type idleReader struct {
	res  chan readResult
	next chan struct{} // the reader's buffer is free again
	left []byte
	err  error
	data bool // bytes came since the last errIdle
}

type readResult struct {
	b   []byte
	err error
}

func newIdleReader(src io.Reader) *idleReader {
	r := &idleReader{res: make(chan readResult), next: make(chan struct{})}
	go func() {
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			r.res <- readResult{buf[:n], err}
			if err != nil {
				return
			}
			<-r.next
		}
	}()
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	if len(r.left) > 0 {
		n := copy(p, r.left)
		r.left = r.left[n:]
		if len(r.left) == 0 && r.err == nil {
			r.next <- struct{}{}
		}
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	var timeout <-chan time.Time
	if r.data {
		t := time.NewTimer(idleFlush)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case res := <-r.res:
		r.left, r.err = res.b, res.err
		if len(res.b) > 0 {
			r.data = true
		}
		if len(r.left) == 0 {
			if r.err == nil {
				r.next <- struct{}{}
			}
			return 0, r.err
		}
		return r.Read(p)
	case <-timeout:
		r.data = false
		return 0, errIdle
	}
}

// WriteTo copies the rest to w, pauses and all.
func (r *idleReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if err == errIdle {
			continue
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
