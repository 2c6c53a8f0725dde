package ssh

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"sync"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// Event and row kinds, and access verbs.
const (
	// KindExec is a command the client asks to run: fields command,
	// login, argv (a JSON array, Split's words), commands (the simple
	// commands, one per line, as SimpleCommands gives them) and
	// argv_error when the command does not split.
	KindExec = "ssh.exec"
	// KindOutput is a chunk of a command's output: fields data, fd
	// ("stdout" or "stderr"), stream ("<channel>/<fd>": one stream of the
	// session, for mask_stream) and eos = "1" on the last chunk.
	KindOutput = "ssh.output"
	// KindChannel and KindRequest are rows of refused channels (port
	// forwarding, X11, agent) and channel requests (shell, subsystems).
	KindChannel = "ssh.channel"
	KindRequest = "ssh.request"

	// VerbExec and VerbShell are the access verbs; the resource is
	// "/" + login.
	VerbExec  = "exec"
	VerbShell = "shell"
)

// ExitDenied is the exit status of a command the gateway refused (as a
// shell's "cannot execute"); ExitUpstream of one it could not start
// because the target could not be reached (as ssh's own failures).
const (
	ExitDenied   = 126
	ExitUpstream = 255
)

// chunkSize is how much output goes through the chain in one event.
const chunkSize = 32 << 10

// session serves one session channel: an exec, or a refusal.
func (c *conn) session(nch xssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	id := c.channels.Add(1)
	defer func() {
		ch.Close()
		// Until the client acknowledges the close, its requests are
		// answered: an unread request would stall the whole connection.
		for r := range reqs {
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	su := &chanSetup{}
	for r := range reqs {
		if c.setupRequest(r, su) {
			continue
		}
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if err := xssh.Unmarshal(r.Payload, &p); err != nil {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, nil)
			c.exec(ch, reqs, id, p.Command, su)
			return
		case "shell":
			r.Reply(true, nil)
			c.shell(ch, reqs, id, su)
			return
		case "subsystem":
			var p struct{ Name string }
			xssh.Unmarshal(r.Payload, &p)
			if p.Name == "sftp" && c.target.opts.SFTP {
				r.Reply(true, nil)
				c.sftp(ch, reqs, id, su)
				return
			}
			c.refuseRequest(ch, r, "subsystem "+p.Name, "the "+strconv.Quote(p.Name)+" subsystem is not allowed through the gateway (sftp and scp -s are refused unless the target sets sftp = true)")
			return
		case "x11-req":
			c.record(KindRequest, r.Type, "X11 forwarding is not allowed through the gateway")
			r.Reply(false, nil)
		case "auth-agent-req@openssh.com":
			c.record(KindRequest, r.Type, "agent forwarding is not allowed through the gateway")
			r.Reply(false, nil)
		default:
			// signal, break...: nothing runs yet; the client goes on
			// without them.
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// tell writes the gateway's own words (a refusal, a hold notice) on the
// client's stderr, and into the session's recording as the client saw
// them.
func (c *conn) tell(ch xssh.Channel, text string) {
	io.WriteString(ch.Stderr(), text)
	c.sess.Recording().Output([]byte(text))
}

// refuseRequest answers a shell or subsystem request the gateway does not
// serve: a stderr line the client shows, exit status 126, and a row.
func (c *conn) refuseRequest(ch xssh.Channel, r *xssh.Request, what, why string) {
	c.record(KindRequest, what, why)
	// Accepted, then ended with the reason: a client that is told "no"
	// exits before it prints what came with the refusal.
	r.Reply(true, nil)
	c.tell(ch, "tollgate: "+why+"\n")
	sendExitStatus(ch, ExitDenied)
	ch.CloseWrite()
}

func sendExitStatus(ch xssh.Channel, status uint32) {
	ch.SendRequest("exit-status", false, xssh.Marshal(struct{ Status uint32 }{status}))
}

// signals forwards the client's requests while a command or shell runs
// (signal, break, window-change) to the upstream channel once there is
// one; a window-change that comes before it is sent when it is set.
type signals struct {
	mu    sync.Mutex
	up    xssh.Channel
	winch []byte
	rec   *gate.Recording // takes each window size as a resize event
}

func (s *signals) set(up xssh.Channel) {
	s.mu.Lock()
	s.up = up
	w := s.winch
	s.mu.Unlock()
	if w != nil {
		up.SendRequest("window-change", false, w)
	}
}

func (s *signals) upstream() xssh.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// request forwards r when it is one of the requests passed on, and
// reports whether it was.
func (s *signals) request(r *xssh.Request) bool {
	switch r.Type {
	case "signal":
		return s.forward(r.Payload)
	case "window-change":
		return s.windowChange(r.Payload)
	case "break":
		var p struct{ Ms uint32 }
		up := s.upstream()
		if up == nil || xssh.Unmarshal(r.Payload, &p) != nil {
			return false
		}
		ok, _ := up.SendRequest("break", true, xssh.Marshal(p))
		return ok
	}
	return false
}

func (s *signals) windowChange(payload []byte) bool {
	var w struct{ Cols, Rows, Wpx, Hpx uint32 }
	if xssh.Unmarshal(payload, &w) != nil {
		return false
	}
	if s.rec != nil && w.Cols > 0 && w.Rows > 0 && w.Cols <= 1<<16 && w.Rows <= 1<<16 {
		s.rec.Resize(int(w.Cols), int(w.Rows))
	}
	p := xssh.Marshal(w)
	s.mu.Lock()
	up := s.up
	if up == nil {
		s.winch = p
	}
	s.mu.Unlock()
	if up != nil {
		up.SendRequest("window-change", false, p)
	}
	return true
}

func (s *signals) forward(payload []byte) bool {
	up := s.upstream()
	if up == nil {
		return false
	}
	var p struct{ Signal string }
	if xssh.Unmarshal(payload, &p) != nil || !validLogin.MatchString(p.Signal) {
		return false
	}
	up.SendRequest("signal", false, xssh.Marshal(p))
	return true
}

// exitInfo is how the upstream command ended, as its request said.
type exitInfo struct {
	kind    string // "exit-status" or "exit-signal"; "" when none came
	payload []byte
}

func (e exitInfo) status() string {
	switch e.kind {
	case "exit-status":
		var p struct{ Status uint32 }
		if xssh.Unmarshal(e.payload, &p) == nil {
			return "exit " + strconv.FormatUint(uint64(p.Status), 10)
		}
	case "exit-signal":
		var p struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}
		if xssh.Unmarshal(e.payload, &p) == nil {
			return "signal " + p.Signal
		}
	}
	return "no exit status"
}

// exec decides one command, runs it upstream and relays it: stdin to the
// upstream as is, stdout and stderr back through the chain, the exit
// status or signal exactly. Its row is recorded when it ends.
func (c *conn) exec(ch xssh.Channel, reqs <-chan *xssh.Request, id uint64, command string, su *chanSetup) {
	c.execs.Add(1)
	s := c.sess
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()

	fields := execFields(command, c.login)
	for k, v := range su.fields(c.login) {
		fields[k] = v // the terminal and variables passed on, when asked for
	}
	r := c.newRun(ch, KindExec, fields, "\n")
	// The client's requests while the command is decided and runs:
	// signals, breaks and window changes go upstream, the rest is
	// refused. Unless the client hangs up first, the channel is closed
	// when the command ends, and the requests end with it.
	sig := &signals{rec: s.Recording()}
	defer r.serve(reqs, cancel, sig.request)()
	defer r.record()

	ev := &event.Event{Phase: event.Request, Protocol: "ssh", Kind: KindExec, Target: c.target.name, Principal: c.principal, Fields: fields}
	dec, ok := r.decide(ctx, VerbExec, ev)
	if !ok {
		return
	}
	defer dec.Done()
	if nv, ok := dec.Verdict.Changes["command"]; ok && nv != command {
		command = nv
		r.row.Request = execFields(command, c.login)
	}

	upCh, why := c.openUpChannel(ctx, su, "exec", xssh.Marshal(struct{ Command string }{command}), "refused to run the command")
	if why != "" {
		r.refuse(ExitUpstream, why)
		return
	}
	defer upCh.Close()
	sig.set(upCh)

	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		n, _ := io.Copy(upCh, s.Recording().InputReader(ch))
		r.stdinN.Store(n)
		upCh.CloseWrite()
	}()
	r.outN, r.withheld = c.relayOutput(ctx, dec, upCh, ch, id, r.extra, nil)
	r.exit = upCh.wait()
	switch {
	case r.withheld != "":
		c.tell(ch, "tollgate: output withheld: "+r.withheld+"\n")
		sendExitStatus(ch, ExitDenied)
	case r.exit.kind != "":
		ch.SendRequest(r.exit.kind, false, r.exit.payload)
	}
	ch.CloseWrite()
	ch.Close()
	<-stdinDone
}

func execFields(command, login string) map[string]string {
	f := map[string]string{"command": command, "login": login}
	argv, err := Split(command)
	if argv == nil {
		argv = []string{}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // argv is read by plugins and analysts, not put in HTML
	enc.Encode(argv)
	f["argv"] = strings.TrimSuffix(b.String(), "\n")
	f["commands"] = strings.Join(SimpleCommands(argv), "\n")
	if err != nil {
		f["argv_error"] = err.Error()
	}
	return f
}

func upstreamMessage(err error) string {
	if ue, ok := err.(*UpstreamError); ok {
		return ue.Message
	}
	return "the target could not be reached"
}

type pumpResult struct {
	bytes    int64
	anns     map[string]string
	withheld string // the chain denied a chunk: why
	broken   bool   // the client stopped taking output
}

// pump copies one output stream of the upstream command to the client,
// each chunk through the chain that decided the command as an ssh.output
// event. The stream always ends with an eos chunk, so that a streaming
// masker flushes what it held back (and forgets the stream).
//
// When a chunk is withheld or the client stops taking output, stop ends
// the upstream command, and the rest of src is read and dropped.
func (c *conn) pump(ctx context.Context, dec *gate.Decision, src io.Reader, dst io.Writer, id uint64, fd string, res *pumpResult, stop func()) {
	wants := dec.Wants(KindOutput)
	stream := strconv.FormatUint(id, 10) + "/" + fd
	ended := !wants
	process := func(data []byte, eos bool) ([]byte, bool) {
		ev := &event.Event{Phase: event.Response, Protocol: "ssh", Kind: KindOutput, Target: c.target.name, Principal: c.principal,
			Fields: map[string]string{"data": string(data), "fd": fd, "stream": stream}}
		if eos {
			ev.Fields["eos"] = "1"
			ended = true
		}
		v := dec.Process(ctx, ev)
		for _, a := range v.Annotations {
			if res.anns == nil {
				res.anns = map[string]string{}
			}
			mergeAnnotation(res.anns, a.Key, a.Value)
		}
		if v.Action == event.Deny || v.Action == event.Hold {
			res.withheld = v.Reason
			if res.withheld == "" {
				res.withheld = "denied by " + v.Plugin
			}
			return nil, false
		}
		if nv, ok := v.Changes["data"]; ok {
			return []byte(nv), true
		}
		return []byte(ev.Fields["data"]), true
	}
	defer func() {
		if !ended {
			process(nil, true) // end the stream in the plugins; nothing more is shown
		}
		if res.withheld != "" || res.broken {
			stop()
		}
		// Whatever is left upstream is read and dropped, so that the
		// upstream channel is not stuck on a full window.
		io.Copy(io.Discard, src)
	}()
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		// A shell's output paused (idleReader): the stream ends in the
		// plugins, so that what a masker holds back (a prompt after
		// something that may start a secret) reaches the terminal; the
		// next chunk starts the stream again.
		idle := err == errIdle
		if idle {
			err = nil
		}
		data := buf[:n]
		if wants && (n > 0 || err != nil || idle) {
			var ok bool
			if data, ok = process(data, err != nil || idle); !ok {
				return
			}
			if idle {
				ended = false
			}
		}
		if len(data) > 0 && !res.broken {
			if _, werr := dst.Write(data); werr != nil {
				res.broken = true
				return
			}
			c.sess.Recording().Output(data) // what the client received, after the chain
			res.bytes += int64(len(data))
		}
		if err != nil {
			return
		}
	}
}

// mergeAnnotation adds an output chunk's annotation to the exec's:
// counts add up ("3" + "2" = "5", "aws=1,jwt=1" + "aws=2" =
// "aws=3,jwt=1"); anything else keeps the last value.
func mergeAnnotation(dst map[string]string, k, v string) {
	old, ok := dst[k]
	if !ok {
		dst[k] = v
		return
	}
	if a, err1 := strconv.Atoi(old); err1 == nil {
		if b, err2 := strconv.Atoi(v); err2 == nil {
			dst[k] = strconv.Itoa(a + b)
			return
		}
	}
	counts, order := map[string]int{}, []string{}
	for _, list := range []string{old, v} {
		for _, part := range strings.Split(list, ",") {
			name, n, ok := strings.Cut(part, "=")
			c, err := strconv.Atoi(n)
			if !ok || err != nil {
				dst[k] = v
				return
			}
			if _, seen := counts[name]; !seen {
				order = append(order, name)
			}
			counts[name] += c
		}
	}
	parts := make([]string, len(order))
	for i, name := range order {
		parts[i] = name + "=" + strconv.Itoa(counts[name])
	}
	dst[k] = strings.Join(parts, ",")
}

func annotations(m map[string]string) []event.Annotation {
	var out []event.Annotation
	for k, v := range m {
		out = append(out, event.Annotation{Key: k, Value: v})
	}
	return out
}
