package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// conn is one client connection: one gate.Session, one principal, one
// login on one target, and at most one upstream connection shared by its
// channels.
//
// The auth fields are written by the authentication callbacks, which run
// in serveConn's goroutine during the handshake, and only read after it.
type conn struct {
	l      *Listener
	nc     net.Conn
	sess   *gate.Session
	ctx    context.Context
	remote string // the client's IP, for the rate limit

	// Set during the handshake.
	principal *event.Principal
	login     string
	target    *target
	rule      string
	authErr   string // the last refusal, for the session.open row
	attempts  int
	// The last certificate presented (certauth.go), for the rows.
	certSerial, certKeyID string
	cert                  *certLogin // the certificate that let the client in

	channels atomic.Uint64 // channel numbers, for stream names
	open     atomic.Int64  // session channels being served
	execs    atomic.Int64
	shells   atomic.Int64

	upOnce sync.Once
	up     *xssh.Client
	upErr  error
}

func (l *Listener) serveConn(nc net.Conn) {
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	host, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	c := &conn{l: l, nc: nc, ctx: ctx, remote: host,
		sess: l.deps.NewSession(gate.SessionInfo{Protocol: "ssh", Listener: l.name, Remote: nc.RemoteAddr().String()})}
	cfg := &xssh.ServerConfig{
		MaxAuthTries:                6,
		ServerVersion:               "SSH-2.0-Tollgate",
		PasswordCallback:            c.password,
		KeyboardInteractiveCallback: c.keyboardInteractive,
	}
	if l.ca.Load() != nil {
		cfg.PublicKeyCallback = c.publicKey
	}
	cfg.AddHostKey(l.signer)
	nc.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	sc, chans, reqs, err := xssh.NewServerConn(nc, cfg)
	if err != nil {
		c.refused(err)
		return
	}
	nc.SetDeadline(time.Time{})
	defer sc.Close()
	if sc.Permissions != nil {
		if cl, ok := sc.Permissions.ExtraData[certLoginKey{}].(*certLogin); ok {
			c.cert = cl
			c.principal, c.login, c.target, c.rule = cl.principal, cl.login, cl.target, cl.rule
		}
	}
	s := c.sess
	s.SetPrincipal(c.principal)
	s.SetTarget(c.target.name, c.rule)
	open := s.Row("")
	open.Request = map[string]string{"user": sc.User(), "login": c.login}
	if c.cert != nil {
		open.Request["auth"], open.Request["cert_serial"], open.Request["cert_key_id"] = "certificate", c.cert.serial, c.cert.keyID
	}
	if err := s.Open(open); err != nil {
		s.Log().Error("session not opened: its row was not recorded", "err", err)
		return
	}
	s.Log().Info("ssh session opened", "subject", c.principal.Subject, "target", c.target.name, "login", c.login)
	status := ""
	defer func() {
		if c.up != nil {
			c.up.Close()
		}
		s.Close(status, "")
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.globalRequests(reqs)
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			c.refuseChannel(nch)
			continue
		}
		if c.open.Add(1) > int64(l.opts.MaxSessions) {
			c.open.Add(-1)
			c.record(KindChannel, "session", fmt.Sprintf("more than %d sessions at once on one connection", l.opts.MaxSessions))
			nch.Reject(xssh.ResourceShortage, fmt.Sprintf("tollgate: at most %d sessions at once on one connection (max_sessions)", l.opts.MaxSessions))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.open.Add(-1)
			c.session(nch)
		}()
	}
	// The client hung up: stop what still runs for it.
	cancel()
	if c.upReady() {
		c.up.Close()
	}
	wg.Wait()
	status = fmt.Sprintf("%d exec", c.execs.Load())
	if n := c.shells.Load(); n > 0 {
		status += fmt.Sprintf(", %d shell", n)
	}
}

// refused records a connection that never authenticated: its open row
// says why, and its close row follows.
func (c *conn) refused(err error) {
	why := c.authErr
	if why == "" {
		why = "handshake failed: " + err.Error()
	}
	if c.principal != nil {
		c.sess.SetPrincipal(c.principal)
	}
	if c.target != nil {
		c.sess.SetTarget(c.target.name, "")
	}
	open := c.sess.Row("")
	open.Verdict, open.Error = "deny", why
	if c.login != "" || c.certSerial != "" {
		open.Request = map[string]string{}
	}
	if c.login != "" {
		open.Request["login"] = c.login
	}
	if c.certSerial != "" {
		open.Request["cert_serial"], open.Request["cert_key_id"] = c.certSerial, c.certKeyID
	}
	c.sess.Open(open)
	c.sess.Close("refused", why)
	c.sess.Log().Info("ssh connection refused", "reason", why)
}

func (c *conn) password(meta xssh.ConnMetadata, pw []byte) (*xssh.Permissions, error) {
	return c.authenticate(meta, string(pw))
}

func (c *conn) keyboardInteractive(meta xssh.ConnMetadata, ask xssh.KeyboardInteractiveChallenge) (*xssh.Permissions, error) {
	token, err := readToken(ask)
	if err != nil {
		return nil, err
	}
	return c.authenticate(meta, token)
}

// askpassLimit is how much of an answer OpenSSH's client keeps: it reads
// SSH_ASKPASS's output (and a terminal's line) into 1024 bytes, so it
// cuts an answer at 1023 bytes without a word. OIDC tokens are often
// longer (GitHub Actions' are 1,000 to 1,500 bytes).
const askpassLimit = 1023

// maxTokenRounds bounds the continuation prompts (16 KiB of token).
const maxTokenRounds = 16

// ContinuedPrompt is the keyboard-interactive prompt that asks for the
// rest of a token from byte offset n; examples/ssh/tollgate-askpass
// answers it.
func ContinuedPrompt(n int) string {
	return "OIDC token, continued from byte " + strconv.Itoa(n) + ": "
}

// readToken asks for the token with keyboard-interactive prompts: while
// an answer is exactly askpassLimit bytes long, the client may have cut
// it, and the next prompt asks for the rest from the byte reached.
func readToken(ask xssh.KeyboardInteractiveChallenge) (string, error) {
	var token strings.Builder
	prompt := "OIDC token: "
	for range maxTokenRounds {
		ans, err := ask("", "", []string{prompt}, []bool{false})
		if err != nil {
			return "", err
		}
		if len(ans) != 1 {
			return "", errors.New("expected one answer")
		}
		part := strings.TrimRight(ans[0], "\r\n")
		token.WriteString(part)
		if len(part) != askpassLimit {
			break
		}
		prompt = ContinuedPrompt(token.Len())
	}
	return token.String(), nil
}

// refuse fails a login attempt with why, which the client reads as an
// SSH banner ("tollgate: why") before the failure; count charges the
// attempt to the source address's failure budget.
func (c *conn) refuse(why string, count bool) (*xssh.Permissions, error) {
	c.authErr = why
	if count {
		c.l.limit.fail(c.remote)
	}
	return nil, &xssh.BannerError{Err: errors.New(why), Message: "tollgate: " + why + "\r\n"}
}

// authenticate verifies the token, resolves the SSH user to a login and
// target and checks access. A refusal reaches the client as an SSH
// banner ("tollgate: ...") before the failure.
func (c *conn) authenticate(meta xssh.ConnMetadata, token string) (*xssh.Permissions, error) {
	c.attempts++
	l := c.l
	refuse := c.refuse
	if l.limit.blocked(c.remote) {
		return refuse("too many failed authentications from "+c.remote+"; try again later", false)
	}
	token = strings.TrimSpace(token)
	p, err := l.deps.Verify(c.ctx, token)
	if err != nil {
		kind, reason := gate.AuthFailure(err)
		if kind == gate.AuthUnavailable {
			c.sess.Log().Warn("token not verified", "err", err)
		}
		if len(token) == askpassLimit {
			reason += " (the ssh client cuts a password at 1023 bytes: use keyboard-interactive with an askpass that answers \"continued from byte N\" prompts, as examples/ssh/tollgate-askpass does)"
		}
		return refuse("authentication failed: "+reason, kind != gate.AuthUnavailable)
	}
	c.principal = p
	login, tname, err := ParseUser(meta.User(), l.defaultLogin)
	c.login = login
	if err != nil {
		return refuse(err.Error(), true)
	}
	t := l.targets[tname]
	if t == nil {
		return refuse("unknown target "+tname, true)
	}
	c.target = t
	d := l.grant(p, tname, login)
	if !d.Allowed {
		return refuse("access denied: login "+login+" on target "+tname+": "+d.Reason, true)
	}
	c.rule, c.authErr = d.Rule, ""
	return &xssh.Permissions{}, nil
}

// globalRequests refuses what the client asks of the connection as a
// whole (remote port forwarding, keepalives are answered false).
func (c *conn) globalRequests(reqs <-chan *xssh.Request) {
	for r := range reqs {
		if r.Type == "tcpip-forward" || r.Type == "streamlocal-forward@openssh.com" {
			c.record(KindRequest, r.Type, "remote port forwarding is not allowed through the gateway")
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// refuseChannel rejects a channel that is not a session (port
// forwarding, X11, agent forwarding) with a message the client shows.
func (c *conn) refuseChannel(nch xssh.NewChannel) {
	why := nch.ChannelType() + " channels are not allowed through the gateway"
	switch nch.ChannelType() {
	case "direct-tcpip", "direct-streamlocal@openssh.com":
		why = "port forwarding is not allowed through the gateway"
	case "x11":
		why = "X11 forwarding is not allowed through the gateway"
	case "auth-agent@openssh.com":
		why = "agent forwarding is not allowed through the gateway"
	}
	row := c.sess.Row(KindChannel)
	row.Request = map[string]string{"type": nch.ChannelType()}
	var fwd struct {
		Addr     string
		Port     uint32
		OrigAddr string
		OrigPort uint32
	}
	if nch.ChannelType() == "direct-tcpip" && xssh.Unmarshal(nch.ExtraData(), &fwd) == nil {
		row.Request["to"] = net.JoinHostPort(fwd.Addr, strconv.FormatUint(uint64(fwd.Port), 10))
	}
	row.Verdict, row.Status, row.Error = "deny", "refused", why
	c.sess.Record(row)
	nch.Reject(xssh.Prohibited, "tollgate: "+why)
}

// record writes a refused channel or request's row.
func (c *conn) record(kind, what, why string) {
	row := c.sess.Row(kind)
	row.Request = map[string]string{"type": what}
	row.Verdict, row.Status, row.Error = "deny", "refused", why
	c.sess.Record(row)
}

// upstream connects to the target once per client connection.
func (c *conn) upstream() (*xssh.Client, error) {
	c.upOnce.Do(func() {
		c.up, c.upErr = c.target.dial(c.ctx, c.login, c.sess.Log())
		if c.upErr != nil {
			c.sess.Log().Warn("upstream connection failed", "target", c.target.name, "err", c.upErr)
			c.sess.UpstreamError(c.upErr)
		}
	})
	return c.up, c.upErr
}

// upReady reports whether an upstream connection was made (without
// making one).
func (c *conn) upReady() bool {
	done := true
	c.upOnce.Do(func() { done = false; c.upErr = errors.New("connection closed") })
	return done && c.up != nil
}
