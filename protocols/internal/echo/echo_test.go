package echo_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/internal/echo"
)

// update rewrites the golden files of audit rows (audittest.Golden).
var update = flag.Bool("update", false, "rewrite testdata's golden audit rows")

// policy is a chain written in Go, the contract under test being the
// layer's: lines starting with DROP are denied, DELETE is held for the
// group "ops", and "secret" in a reply is masked. Replies are marked
// with the generation's name, so that a test sees which chain saw them.
type policy struct{ gen string }

func (p policy) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	line := ev.Fields["line"]
	switch {
	case ev.Kind == echo.KindLine && strings.HasPrefix(line, "DROP"):
		return event.Verdict{Action: event.Deny, Plugin: "guard", Reason: "DROP is not allowed"}, nil
	case ev.Kind == echo.KindLine && strings.HasPrefix(line, "DELETE"):
		return event.Verdict{Action: event.Hold, Plugin: "approve", Reason: "DELETE needs a person", ApproverGroups: []string{"ops"}}, nil
	case ev.Kind == echo.KindLine && strings.HasPrefix(line, "BROKEN"):
		return event.Verdict{}, errors.New("plugin trapped")
	case ev.Kind == echo.KindReply:
		v := event.Verdict{Action: event.Rewrite, Changes: map[string]string{"line": strings.ReplaceAll(line, "secret", "[masked]") + " gen=" + p.gen}}
		if strings.Contains(line, "secret") {
			v.Annotations = []event.Annotation{{Key: "mask.line", Value: "1"}}
		}
		return v, nil
	}
	return event.Verdict{Action: event.Allow}, nil
}

type env struct {
	l      *echo.Listener
	rec    *testenv.Recorder
	chain  *plugin.Reloadable
	appr   *approval.Manager
	iss    *identity.DevIssuer
	closed atomic.Int32 // chain generations closed after a reload
}

func start(t *testing.T, recorder audit.Recorder) *env {
	t.Helper()
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issSrv := &http.Server{Handler: iss.Handler()}
	go issSrv.Serve(issLn)
	t.Cleanup(func() { issSrv.Close() })
	appr, err := approval.New(approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{rec: &testenv.Recorder{}, appr: appr, iss: iss}
	if recorder == nil {
		recorder = e.rec
	}
	e.chain = plugin.NewReloadable(policy{gen: "A"}, func(context.Context) error { e.closed.Add(1); return nil })
	e.l = echo.New("echo", "lines", gate.Deps{
		GatewayID: "test",
		Auth:      identity.NewVerifier([]config.Issuer{iss.IssuerConfig()}, 10, identity.Options{}),
		Policy:    access.New([]config.Rule{{Name: "agents", Targets: []string{"lines"}, Groups: []string{"agents"}}}),
		Chain:     e.chain,
		Recorder:  recorder,
		Approvals: appr,
	})
	if err := e.l.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.l.Close() })
	return e
}

func (e *env) token(t *testing.T, groups ...string) string {
	t.Helper()
	tok, err := e.iss.Mint(identity.MintOptions{Subject: "agent", Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type client struct {
	t  *testing.T
	c  net.Conn
	in *bufio.Reader
}

func (e *env) dial(t *testing.T, token string) *client {
	t.Helper()
	c, err := net.Dial("tcp", e.l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, in: bufio.NewReader(c)}
	cl.send("AUTH " + token)
	return cl
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := c.in.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

func (c *client) ask(line string) string {
	c.t.Helper()
	c.send(line)
	return c.read()
}

// rowsOf waits for session sid's close row and returns its rows in order.
func (e *env) rowsOf(t *testing.T, sid string) []audit.Row {
	t.Helper()
	e.rec.Wait(t, "closing "+sid, func(r audit.Row) bool { return r.SessionID == sid && r.Kind == audit.KindSessionClose })
	var rows []audit.Row
	for _, r := range e.rec.Rows() {
		if r.SessionID == sid {
			rows = append(rows, r)
		}
	}
	return rows
}

func verifyComplete(t *testing.T, rows []audit.Row) {
	t.Helper()
	for _, f := range audit.Verify(rows) {
		if f.Status != audit.StatusComplete {
			t.Errorf("audit verify: session %s is %s: %s", f.SessionID, f.Status, f.Detail)
		}
	}
}

// The whole layer through one protocol: a token, access, the chain's
// allow, rewrite, deny and failure, a hold approved and one denied, the
// reply masked by the same chain, and a session whose rows verify.
func TestEchoEndToEnd(t *testing.T) {
	e := start(t, nil)
	c := e.dial(t, e.token(t, "agents"))
	ready := c.read()
	sid, ok := strings.CutPrefix(ready, "READY ")
	if !ok {
		t.Fatalf("login: %q", ready)
	}
	if got := c.ask("hello secret"); got != "OK hello [masked] gen=A" {
		t.Errorf("masked reply: %q", got)
	}
	if got := c.ask("DROP TABLE t"); got != "ERR DROP is not allowed" {
		t.Errorf("deny: %q", got)
	}
	if got := c.ask("BROKEN"); got != "ERR "+gate.ReasonChainFailed {
		t.Errorf("chain failure: %q", got)
	}

	// A hold, approved by someone in "ops".
	c.send("DELETE row 1")
	held := strings.Fields(c.read())
	if len(held) != 3 || held[0] != "HELD" {
		t.Fatalf("hold: %q", held)
	}
	ops := &event.Principal{Issuer: "test", Subject: "reviewer", Groups: []string{"ops"}}
	if _, err := e.appr.Approve(held[1], ops, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := c.read(); got != "OK DELETE row 1 gen=A" {
		t.Errorf("approved: %q", got)
	}
	// The same line again: an approval covers one request.
	c.send("DELETE row 1")
	held2 := strings.Fields(c.read())
	if len(held2) != 3 || held2[1] == held[1] {
		t.Fatalf("a second hold reused approval %s: %q", held[1], held2)
	}
	if _, err := e.appr.Deny(held2[1], ops, "not today"); err != nil {
		t.Fatal(err)
	}
	if got := c.read(); !strings.HasPrefix(got, "ERR ") || !strings.Contains(got, "not today") {
		t.Errorf("denied: %q", got)
	}
	c.c.Close()

	rows := e.rowsOf(t, sid)
	var kinds []string
	for _, r := range rows {
		kinds = append(kinds, r.Kind+":"+string(r.Verdict))
	}
	want := []string{"session.open:", "echo.line:allow", "echo.line:deny", "echo.line:error", "echo.line:hold", "echo.line:hold", "session.close:"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("rows: %v, want %v", kinds, want)
	}
	if rows[1].Annotations["mask.line"] != "1" || rows[1].Status != "ok" {
		t.Errorf("masked row: %+v", rows[1])
	}
	if rows[4].ApprovalID != held[1] || rows[4].Approver != "reviewer" || rows[4].Status != "ok" {
		t.Errorf("approved row: approval %q by %q, status %q", rows[4].ApprovalID, rows[4].Approver, rows[4].Status)
	}
	if rows[5].ApprovalID != held2[1] || rows[5].Status != "refused" {
		t.Errorf("denied row: approval %q, status %q", rows[5].ApprovalID, rows[5].Status)
	}
	if rows[6].Status != "5 lines" || rows[6].Subject != "agent" || rows[6].AccessRule != "agents" {
		t.Errorf("close row: %+v", rows[6])
	}
	verifyComplete(t, rows)
	audittest.Golden(t, "testdata/end_to_end.json", rows)
}

// A refused login is a session too: its open row says why, its close row
// follows, and the chain verifies.
func TestEchoRefusedLogin(t *testing.T) {
	e := start(t, nil)
	for name, tc := range map[string]struct{ token, want string }{
		"garbage":   {"not-a-jwt", "ERR auth: "},
		"no token":  {"", "ERR auth: an OIDC token is required"},
		"no access": {e.token(t, "visitors"), "ERR access denied: "},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.dial(t, tc.token)
			if got := c.read(); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("got %q, want %q...", got, tc.want)
			}
			var sid string
			e.rec.Wait(t, "refused open", func(r audit.Row) bool {
				if r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.HasPrefix("ERR "+r.Error, tc.want) {
					sid = r.SessionID
					return true
				}
				return false
			})
			verifyComplete(t, e.rowsOf(t, sid))
		})
	}
}

// The chain generation that decided a request also sees its reply: a
// reload while the request is held does not change who masks it, and
// the old generation is closed once the request is done.
func TestEchoReloadKeepsDecidingChain(t *testing.T) {
	e := start(t, nil)
	c := e.dial(t, e.token(t, "agents"))
	c.read()
	c.send("DELETE secret")
	held := strings.Fields(c.read())
	e.chain.Replace(policy{gen: "B"}, nil)
	if e.closed.Load() != 0 {
		t.Fatal("generation A closed while a request it decided was held")
	}
	ops := &event.Principal{Issuer: "test", Subject: "reviewer", Groups: []string{"ops"}}
	if _, err := e.appr.Approve(held[1], ops, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := c.read(); got != "OK DELETE [masked] gen=A" {
		t.Errorf("reply after reload: %q (want generation A's)", got)
	}
	if got := c.ask("next"); got != "OK next gen=B" {
		t.Errorf("next request: %q (want generation B's)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.closed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.closed.Load() != 1 {
		t.Error("generation A never closed after its last request")
	}
}

// fullRecorder refuses new requests as a full spool does, and keeps the
// rows that are reserved (session open and close).
type fullRecorder struct{ testenv.Recorder }

func (f *fullRecorder) Admit() error { return audit.ErrFull }

// A full audit trail refuses each request before the chain sees it.
func TestEchoAuditFull(t *testing.T) {
	full := &fullRecorder{}
	e := start(t, full)
	c := e.dial(t, e.token(t, "agents"))
	c.read()
	if got := c.ask("hello"); !strings.HasPrefix(got, "ERR the audit trail cannot take more rows now") {
		t.Errorf("got %q", got)
	}
}

// The protocol registers itself: config.Parse decodes its listener's
// own key, refuses what it does not take (with the position), and
// gate.NewService builds a listener that serves from the config.
func TestEchoRegistersItsConfig(t *testing.T) {
	const src = `
[[targets]]
name = "lines"
protocol = "echo"
upstream = "nowhere"

[[listeners]]
name = "echo"
protocol = "echo"
listen = "127.0.0.1:0"
target = "lines"
`
	if _, err := config.Parse("gateway.toml", []byte(strings.Replace(src, `target = "lines"`, `taget = "lines"`, 1)), t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), `gateway.toml:11:1: listeners[0].taget: unknown key (did you mean "listeners.target"?)`) ||
		!strings.Contains(err.Error(), "listeners[0]: target is required") {
		t.Fatalf("a misspelt key: %v", err)
	}
	cfg, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, nil) // for its issuer, chain and recorder
	l, err := gate.NewService(cfg.Listeners[0], map[string]*config.Target{"lines": &cfg.Targets[0]}, gate.Deps{
		GatewayID: "test",
		Auth:      identity.NewVerifier([]config.Issuer{e.iss.IssuerConfig()}, 10, identity.Options{}),
		Policy:    access.New([]config.Rule{{Name: "agents", Targets: []string{"lines"}, Groups: []string{"agents"}}}),
		Chain:     e.chain,
		Recorder:  e.rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := &client{t: t, c: c, in: bufio.NewReader(c)}
	cl.send("AUTH " + e.token(t, "agents"))
	if ready := cl.read(); !strings.HasPrefix(ready, "READY ") {
		t.Fatalf("login: %q", ready)
	}
	if got := cl.ask("hello"); got != "OK hello gen=A" {
		t.Fatalf("a line through the listener the config built: %q", got)
	}
	if l.Name() != "echo" {
		t.Fatalf("Name() = %q", l.Name())
	}
}
