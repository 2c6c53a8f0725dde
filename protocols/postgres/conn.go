package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// SQLSTATEs the gateway sends on its own behalf.
const (
	codeInvalidAuthorization  = "28000" // no TLS, no access
	codeInvalidPassword       = "28P01" // missing or bad token
	codeCannotConnectNow      = "57P03" // issuer or audit unavailable
	codeConnectionFailure     = "08006" // upstream unavailable
	codeProtocolViolation     = "08P01"
	codeIdleSessionTimeout    = "57P05" // idle_timeout, as PostgreSQL's idle_session_timeout
	codeInsufficientPriv      = "42501" // a deny
	codeInvalidStatementName  = "26000" // a Bind of a statement the gateway never saw parsed
	codeFeatureNotSupported   = "0A000"
	codeInvalidCatalog        = "3D000" // no such target
	codeProgramLimitExceeded  = "54000" // message or statement over the cap
	codeInsufficientResources = "53000" // the audit trail is full
	codeTooManyConnections    = "53300" // max_connections, max_connections_per_source
	codeWarning               = "01000" // a notice: settings not passed on
)

// serveConn runs one client connection from startup to close. It owns nc.
// refused is set when the connection is over a cap: it is read as far as
// its startup message (a CancelRequest is still served, as PostgreSQL
// does) and answered with 53300.
func (l *Listener) serveConn(nc net.Conn, refused *refusal) {
	defer nc.Close()
	// auth_timeout covers TLS, startup, the token and the upstream login:
	// a client that stalls anywhere before its session is ready holds a
	// slot no longer than that.
	deadline := time.Now().Add(l.cfg.AuthTimeout.Duration)
	nc.SetDeadline(deadline)
	st := &startup{l: l, nc: nc, remote: nc.RemoteAddr().String(), deadline: deadline, refused: refused}
	s, err := st.run()
	if err != nil {
		st.failed(err)
		return
	}
	nc.SetDeadline(time.Time{})
	s.run()
}

// failed ends a startup that returned err: a refusal or a timeout that no
// FATAL answered yet is answered (when the client can read one) and
// recorded; each is logged.
func (st *startup) failed(err error) {
	log := st.l.deps.Log
	switch {
	case errors.Is(err, errQuiet):
		return
	case st.refused != nil:
		if st.audited == nil {
			// The client went away or stalled before its startup message.
			st.fatal(codeTooManyConnections, st.refused.msg, err)
		}
		log.Warn("postgres: connection refused: "+st.refused.cap, "listener", st.l.cfg.Name, "remote", st.remote, "session_id", st.sessionID, "err", err)
	case isTimeout(err):
		if st.audited == nil {
			st.fatal(codeProtocolViolation, fmt.Sprintf("the connection did not log in within auth_timeout (%s)", st.l.cfg.AuthTimeout.Duration), err)
		}
		log.Warn("postgres: login timed out (auth_timeout)", "listener", st.l.cfg.Name, "remote", st.remote, "session_id", st.sessionID, "err", err)
	default:
		log.Debug("postgres: startup ended", "listener", st.l.cfg.Name, "remote", st.remote, "session_id", st.sessionID, "err", err)
	}
}

// isTimeout reports a read or write that ran into the connection's deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH, which
// pgproto3 enforces.
const maxStartupPacket = 10_000

// badStartupLength reports a startup packet pgproto3 refused for its
// length, and the length the client announced.
func badStartupLength(err error) (int, bool) {
	var n int
	if err == nil {
		return 0, false
	}
	if _, serr := fmt.Sscanf(err.Error(), "invalid length of startup packet: %d", &n); serr != nil {
		return 0, false
	}
	return n, true // without the length word, as PostgreSQL counts
}

// drainStartup reads and drops the rest of a refused startup packet,
// bounded like a refused message (drainClient).
func (st *startup) drainStartup(announced int) {
	end := time.Now().Add(drainFor)
	buf := make([]byte, 32<<10)
	for left := int64(min(max(announced, 0), 1<<20)) + drainExtra; left > 0; {
		d := time.Now().Add(drainQuiet)
		if d.After(end) {
			d = end
		}
		st.nc.SetReadDeadline(d)
		n, err := st.nc.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			break
		}
	}
	st.nc.SetReadDeadline(st.deadline)
}

// errRefused ends a connection over a cap once it has its 53300.
var errRefused = errors.New("over a connection cap")

// errQuiet ends a connection that needs no log line (a cancel request, a
// probe that hung up).
var errQuiet = errors.New("quiet close")

// startup is a client connection before its session is ready.
type startup struct {
	l         *Listener
	nc        net.Conn
	be        *pgproto3.Backend
	remote    string
	deadline  time.Time // auth_timeout after accept
	refused   *refusal  // over a cap: answer the startup message with 53300
	tls       bool
	sessionID string
	gs        *gate.Session // made with sessionID
	params    map[string]string
	settings  startupSettings
	audited   *session // set once a session.open row exists
	// answerable: the client sent a whole startup packet (one refused
	// for its length), so it reads an ErrorResponse.
	answerable bool
	in         *clientReader
}

func (st *startup) backend() {
	st.in = &clientReader{r: st.nc}
	st.be = pgproto3.NewBackend(st.in, st.nc)
	st.be.SetMaxBodyLen(st.l.cfg.MaxMessageBytes)
}

func (st *startup) run() (*session, error) {
	st.backend()
	var sm *pgproto3.StartupMessage
	for sm == nil {
		msg, err := st.be.ReceiveStartupMessage()
		if n, bad := badStartupLength(err); bad {
			// PostgreSQL closes without a word; the gateway says why and
			// records it, once the client's packet is read (a close with
			// unread bytes would reset the connection under the answer).
			st.drainStartup(n)
			st.answerable = true
			return nil, st.fatal(codeProtocolViolation, fmt.Sprintf("a startup packet of %d bytes (after its length) is outside PostgreSQL's limits of 4 to %d", n, maxStartupPacket), err)
		}
		if err != nil {
			return nil, fmt.Errorf("startup: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if st.tls || st.l.tlsConf == nil {
				if _, err := st.nc.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := st.nc.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(st.nc, st.l.tlsConf)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			// A fresh reader: bytes a client sent in the clear behind its
			// SSLRequest are dropped, never read as if encrypted.
			st.nc, st.tls = tc, true
			st.backend()
		case *pgproto3.GSSEncRequest:
			if _, err := st.nc.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case *pgproto3.CancelRequest:
			st.l.cancel(m, st.remote)
			return nil, errQuiet
		case *pgproto3.StartupMessage:
			sm = m
			if st.refused != nil {
				st.params = sm.Parameters
				return nil, st.fatal(codeTooManyConnections, st.refused.msg, errRefused)
			}
		default:
			return nil, fmt.Errorf("startup: unexpected %T", msg)
		}
	}
	st.newSession()
	st.params = sm.Parameters
	st.settings = filterStartup(sm.Parameters)
	return st.login(sm)
}

// fatal sends a FATAL ErrorResponse, when the client can read one, records
// the refusal, and returns err for the caller.
func (st *startup) fatal(code, msg string, err error) error {
	if st.sessionID == "" {
		// Refused before its startup message (over a cap, out of time):
		// a session of its own all the same.
		st.newSession()
	}
	// The client reads our messages once it has TLS or sent its startup
	// message; before that (or in the middle of a TLS handshake) a
	// message would be garbage to it.
	if st.tls || st.params != nil || st.answerable {
		// A little time past auth_timeout, to say why.
		st.nc.SetWriteDeadline(time.Now().Add(time.Second))
		st.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code,
			Message: msg, Detail: "tollgate session " + st.sessionID})
		if ferr := st.be.Flush(); ferr != nil {
			st.l.deps.Log.Debug("postgres: FATAL not delivered", "session_id", st.sessionID, "code", code, "err", ferr)
		}
	}
	if st.audited == nil {
		// Refused before anyone was identified: a session of its own, so
		// that probes and bad tokens leave a trace.
		st.audited = &session{l: st.l, gs: st.gs, id: st.sessionID, remote: st.remote, tls: st.tls, opened: time.Now(),
			pgUser: st.params["user"], database: st.params["database"], settings: &st.settings}
		st.audited.recordOpen(code + ": " + msg)
	}
	if st.audited != nil {
		st.audited.closeErr = code + ": " + msg
		st.audited.recordClose()
	}
	return err
}

// newSession gives the connection its session, and so its ID.
func (st *startup) newSession() {
	st.gs = st.l.deps.NewSession(gate.SessionInfo{Protocol: "postgres", Listener: st.l.cfg.Name, Remote: st.remote})
	st.sessionID = st.gs.ID()
}

// login takes a session from the startup message to ReadyForQuery, in
// the order PostgreSQL's own login goes: what the connection may ask for
// (checkStartup), who the client is (authenticate), where it goes and
// whether it may (openSession), the upstream login (connectUpstream), and
// the greeting (greet). Each refusal is a FATAL the client can read and a
// session.open row.
func (st *startup) login(sm *pgproto3.StartupMessage) (*session, error) {
	if err := st.checkStartup(sm); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithDeadline(context.Background(), st.deadline)
	defer cancel()
	p, err := st.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	s, err := st.openSession(p, sm.Parameters)
	if err != nil {
		return nil, err
	}
	hc, err := st.connectUpstream(ctx, s)
	if err != nil {
		return nil, err
	}
	return st.greet(s, hc)
}

// checkStartup refuses what the gateway does not serve before asking for
// the token: no TLS off loopback, replication, a full audit trail.
func (st *startup) checkStartup(sm *pgproto3.StartupMessage) error {
	if sm.ProtocolVersion != pgproto3.ProtocolVersion30 || len(st.settings.protocolOptions) > 0 {
		// The gateway speaks 3.0 on both sides, with no protocol options.
		st.be.Send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: st.settings.protocolOptions})
	}
	if !st.tls {
		host, _, _ := net.SplitHostPort(st.remote)
		ip := net.ParseIP(host)
		if !st.l.cfg.AllowPlaintext || ip == nil || !ip.IsLoopback() {
			return st.fatal(codeInvalidAuthorization, "TLS is required: connect with sslmode=require (the password is an OIDC token)", errors.New("client without TLS"))
		}
	}
	if v := sm.Parameters["replication"]; v != "" && v != "false" && v != "0" && v != "off" {
		return st.fatal(codeFeatureNotSupported, "replication connections are not served by the gateway", errors.New("replication requested"))
	}
	if err := st.l.deps.Admit(); err != nil {
		return st.fatal(codeCannotConnectNow, "the audit trail cannot take more rows right now; nothing unaudited is let through", err)
	}
	return nil
}

// authenticate asks for the password, which is the OIDC token, and
// verifies it within auth_timeout.
func (st *startup) authenticate(ctx context.Context) (*event.Principal, error) {
	st.be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := st.be.Flush(); err != nil {
		return nil, err
	}
	st.be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
	msg, err := st.be.Receive()
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	pm, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return nil, st.fatal(codeProtocolViolation, "expected a password message", fmt.Errorf("password: got %T", msg))
	}
	token := pm.Password
	if token == "" {
		return nil, st.fatal(codeInvalidPassword, "an OIDC token is required as the password (PGPASSWORD=$TOKEN)", errors.New("no token"))
	}
	p, err := st.l.deps.Verify(ctx, token)
	if err != nil {
		kind, reason := gate.AuthFailure(err)
		switch {
		case kind == gate.AuthInvalid:
			return nil, st.fatal(codeInvalidPassword, "the OIDC token was not accepted: "+reason, err)
		case ctx.Err() != nil:
			return nil, st.fatal(codeCannotConnectNow, fmt.Sprintf("the token could not be checked within auth_timeout (%s)", st.l.cfg.AuthTimeout.Duration), err)
		}
		st.gs.Log().Warn("token not verified", "err", err)
		return nil, st.fatal(codeCannotConnectNow, reason, err)
	}
	return p, nil
}

// openSession picks the target (the listener's, or the one the database
// names) and checks access to it; the session it returns is the one the
// rows of this connection belong to.
func (st *startup) openSession(p *event.Principal, params map[string]string) (*session, error) {
	tname, db := st.l.cfg.Target, params["database"]
	if db == "" {
		db = params["user"]
	}
	if tname == "" {
		tname = db
		db = ""
	}
	t := st.l.targets[tname]
	if t != nil && db == "" {
		db = t.database
	}
	s := &session{l: st.l, gs: st.gs, id: st.sessionID, principal: p, remote: st.remote, tls: st.tls,
		pgUser: params["user"], database: db, targetName: tname, opened: time.Now(), client: st.nc, settings: &st.settings}
	if t == nil {
		s.targetName = ""
		s.recordOpen("unknown target " + tname)
		st.audited = s
		return nil, st.fatal(codeInvalidCatalog, fmt.Sprintf("no target named %q on this gateway (the database names the target)", tname), errors.New("unknown target"))
	}
	s.target = t
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if exp, err := strconv.ParseFloat(p.Claims["exp"], 64); err == nil && exp > 0 {
		s.expires = time.Unix(int64(exp), 0)
	}
	d := st.l.deps.Authorize(p, gate.AccessRequest{Target: tname, Verb: "CONNECT", Resource: "/" + db})
	s.rule = d.Rule
	if !d.Allowed {
		s.recordOpen(d.Reason)
		st.audited = s
		return nil, st.fatal(codeInvalidAuthorization, "access denied: "+d.Reason, errors.New("access denied"))
	}
	return s, nil
}

// connectUpstream logs in to the target with the gateway's credential and
// checks the settings the server reports; the session's open row says
// how it went.
func (st *startup) connectUpstream(ctx context.Context, s *session) (*pgconn.HijackedConn, error) {
	t, tname := s.target, s.targetName
	hc, err := t.connect(ctx, s.database, &st.settings, st.sessionID)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
			// A value the server rejected (statement_timeout=soon): the
			// client's own input, so the client hears the server's words.
			msg := scrub(pe.Message, t.password)
			s.recordOpen("upstream: " + msg)
			st.audited = s
			return nil, st.fatal(pe.Code, "target "+tname+" refused a setting: "+msg, err)
		}
		// The detail stays in the log and the audit row; the client learns
		// only that the target did not take the connection.
		st.l.deps.Log.Warn("postgres: upstream connect failed", "session_id", st.sessionID, "target", tname, "err", scrub(err.Error(), t.password))
		s.recordOpen("upstream: " + scrub(err.Error(), t.password))
		s.gs.UpstreamError(err) // after recordOpen, which names the target
		st.audited = s
		msg := "target " + tname + " did not accept the gateway's connection"
		if ctx.Err() != nil {
			msg += fmt.Sprintf(" within auth_timeout (%s)", st.l.cfg.AuthTimeout.Duration)
		}
		return nil, st.fatal(codeConnectionFailure, msg, err)
	}
	for _, k := range [...]string{"client_encoding", "standard_conforming_strings"} {
		if why := settingProblem(k, hc.ParameterStatuses[k]); why != "" {
			// A role or database default the gateway cannot judge
			// statements under: never start the session.
			hc.Conn.Close()
			s.recordOpen("upstream: " + why)
			st.audited = s
			return nil, st.fatal(codeFeatureNotSupported, "target "+tname+": "+why, errors.New(why))
		}
	}
	s.recordOpen("")
	st.audited = s
	return hc, nil
}

// greet hands the client the server's parameters, the gateway's cancel
// key and ReadyForQuery: from here the session relays.
func (st *startup) greet(s *session, hc *pgconn.HijackedConn) (*session, error) {
	s.up = hc.Conn
	s.txStatus = hc.TxStatus
	pid, secret := st.l.cancels.add(&cancelTarget{t: s.target, addr: hc.Conn.RemoteAddr().String(), pid: hc.PID, secret: hc.SecretKey, sessionID: s.id, hold: s.cancelHold})
	s.cancelPID, s.cancelSecret = pid, secret

	st.be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range hc.ParameterStatuses {
		if k == "application_name" {
			v = st.settings.app
		}
		st.be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	var key [4]byte
	key[0], key[1], key[2], key[3] = byte(secret>>24), byte(secret>>16), byte(secret>>8), byte(secret)
	st.be.Send(&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: key[:]})
	if len(st.settings.dropped) > 0 {
		// Where PostgreSQL puts its own startup warnings: libpq prints it
		// at connect, pgx calls OnNotice.
		st.be.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: codeWarning,
			Message: "tollgate did not pass these settings to the server: " + st.settings.droppedList(true),
			Detail:  "tollgate session " + st.sessionID,
			Hint:    "Settings a client may set at startup: " + startupSettingList + "."})
	}
	st.be.Send(&pgproto3.ReadyForQuery{TxStatus: hc.TxStatus})
	if err := st.be.Flush(); err != nil {
		s.closeErr = "client went away during startup"
		s.up.Close()
		st.l.cancels.remove(pid, secret)
		s.recordClose()
		return nil, err
	}
	s.be = st.be
	st.in.s = s
	return s, nil
}

// cancel forwards a client's CancelRequest to the upstream session its PID
// and key map to, with the upstream's own key. Unknown pairs are ignored,
// as PostgreSQL does, and logged: a stream of them is someone guessing.
func (l *Listener) cancel(m *pgproto3.CancelRequest, remote string) {
	ct := l.cancels.get(m.ProcessID, m.SecretKey)
	if ct == nil {
		l.deps.Log.Info("postgres: cancel request with an unknown process ID and key ignored", "listener", l.cfg.Name, "remote", remote, "pid", m.ProcessID)
		return
	}
	if ct.hold != nil && ct.hold() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ct.send(ctx); err != nil {
		l.deps.Log.Warn("postgres: cancel request not delivered", "session_id", ct.sessionID, "err", err)
		return
	}
	l.deps.Log.Info("postgres: cancel request forwarded", "session_id", ct.sessionID)
}
