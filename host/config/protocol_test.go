package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The tests of this package register two protocols of their own, as a
// protocol package does from init: "fake" (listeners with routes to
// targets, ranged keys, a serve-mode rule) and "other" (a key of its own,
// to show where a key belongs).
func init() {
	RegisterProtocol(Protocol{
		Name:        "fake",
		NewListener: func() Options { return &fakeListener{} },
		NewTarget:   func() Options { return &fakeTarget{} },
		Serve: func(t *Table, dev bool) {
			if !dev && t.Listener().TLSCert == "" {
				t.Problem("", "fake listener %q needs tls_cert unless --dev", t.Listener().Name)
			}
		},
	})
	RegisterProtocol(Protocol{
		Name:        "other",
		NewListener: func() Options { return &otherListener{} },
	})
}

type fakeListener struct {
	Timeout  Duration    `toml:"timeout"`   // 1s..10m, default 30s
	Grace    Duration    `toml:"grace"`     // 0..1h (zero: none), default 5s
	MaxBytes int         `toml:"max_bytes"` // 1 KiB..1 GiB, default 64 KiB
	Routes   []fakeRoute `toml:"routes"`
}

type fakeRoute struct {
	Target string `toml:"target"`
}

func (o *fakeListener) Check(t *Table) {
	t.Duration("timeout", &o.Timeout, time.Second, 10*time.Minute, 30*time.Second)
	t.Duration("grace", &o.Grace, 0, time.Hour, 5*time.Second)
	t.Int("max_bytes", &o.MaxBytes, kib, gib, 64*kib)
	for i, r := range o.Routes {
		t.TargetRef(fmt.Sprintf("routes[%d].target", i), r.Target)
	}
}

type fakeTarget struct {
	Mode string `toml:"mode"`
}

func (o *fakeTarget) Check(t *Table) {
	if o.Mode == "" {
		o.Mode = "plain"
	}
	if !oneOf(o.Mode, "plain", "fancy") {
		t.Problem("mode", "must be plain or fancy")
	}
	if cr := t.Self().Credential; cr.Type == "bearer" {
		t.RequireSecret("credential.token", cr.Token)
	}
}

type otherListener struct {
	Depth int `toml:"depth"`
}

func (*otherListener) Check(*Table) {}

func TestProtocolOptionsDecodeAndDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	l := c.Listeners[0]
	o, ok := l.Options.(*fakeListener)
	if !ok {
		t.Fatalf("listener options %T, want *fakeListener", l.Options)
	}
	if l.Name != "http" || l.Listen != "127.0.0.1:8080" || len(o.Routes) != 1 || o.Routes[0].Target != "api" {
		t.Errorf("decoded: %+v %+v", l, o)
	}
	if o.Timeout.Duration != 30*time.Second || o.Grace.Duration != 5*time.Second || o.MaxBytes != 64*kib {
		t.Errorf("defaults: %+v", o)
	}
	if to := c.Targets[0].Options.(*fakeTarget); to.Mode != "plain" {
		t.Errorf("target default mode %q", to.Mode)
	}
	// Written values are honoured, a written zero too where the range
	// takes it.
	src := strings.Replace(minimal, `listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\ntimeout = \"2s\"\ngrace = \"0s\"\nmax_bytes = 2048", 1)
	o = mustParse(t, src).Listeners[0].Options.(*fakeListener)
	if o.Timeout.Duration != 2*time.Second || o.Grace.Duration != 0 || o.MaxBytes != 2048 {
		t.Errorf("written: %+v", o)
	}
}

func TestProtocolOptionsProblems(t *testing.T) {
	for _, tc := range []struct {
		insert string // after the listener's listen line
		key    string // the line the problem is on
		want   string
	}{
		{"timeout = \"0s\"", "timeout", `listeners[0].timeout: must be between 1s and 10m`},
		{"timeout = \"1h\"", "timeout", `listeners[0].timeout: must be between 1s and 10m`},
		{"grace = \"-1s\"", "grace", `listeners[0].grace: must be between 0s and 1h`},
		{"max_bytes = 0", "max_bytes", `listeners[0].max_bytes: must be between 1024 and 1073741824 (1 GiB)`},
		{"max_byte = 2048", "max_byte", `listeners[0].max_byte: unknown key (did you mean "listeners.max_bytes"?)`},
		{"depth = 3", "depth", `listeners[0].depth: unknown key: applies to other listeners only`},
		{"[listeners.extra]\nx = 1", "[listeners.extra]", `listeners[0].extra: unknown key`},
	} {
		src := strings.Replace(minimal, `listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\n"+tc.insert, 1)
		line := strings.Count(src[:strings.Index(src, tc.key)], "\n") + 1
		wantProblem(t, problemsOf(t, src), line, 1, tc.want)
	}
	// An unknown key inside a sub-table of the protocol's options is
	// placed on its own line, in its own table.
	src := minimal + "\n[[listeners]]\nname = \"b\"\nprotocol = \"fake\"\nlisten = \"127.0.0.1:8081\"\n[[listeners.routes]]\ntarget = \"api\"\n[[listeners.routes]]\ntagret = \"api\"\n"
	line := strings.Count(src[:strings.Index(src, "tagret")], "\n") + 1
	wantProblem(t, problemsOf(t, src), line, 1, `listeners[1].routes[1].tagret: unknown key (did you mean "listeners.routes.target"?)`)
	// Below the top of the table, another protocol's key is just unknown.
	src = strings.Replace(minimal, `target = "api"`, "target = \"api\"\ndepth = 1", 1)
	line = strings.Count(src[:strings.Index(src, "depth")], "\n") + 1
	ps := problemsOf(t, src)
	wantProblem(t, ps, line, 1, "listeners[0].routes[0].depth: unknown key")
	if strings.Contains(ps.Error(), "applies to") {
		t.Errorf("a key in a sub-table said whose it is at the top: %v", ps)
	}
	// A key one listener takes does not hide the same key unknown to
	// another (the decoder names keys without indices).
	src = minimal + "\n[[listeners]]\nname = \"o\"\nprotocol = \"other\"\nlisten = \"127.0.0.1:8081\"\ntimeout = \"1s\"\n"
	line = strings.Count(src[:strings.LastIndex(src, "timeout")], "\n") + 1
	wantProblem(t, problemsOf(t, src), line, 1, "listeners[1].timeout: unknown key: applies to fake listeners only")
	// Cross-checks: the route's target exists and speaks the protocol;
	// the target's own keys and credential rules.
	src = minimal + "\n[[listeners]]\nname = \"o\"\nprotocol = \"fake\"\nlisten = \"127.0.0.1:8081\"\n[[listeners.routes]]\ntarget = \"ghost\"\n"
	wantProblem(t, problemsOf(t, src), strings.Count(src[:strings.Index(src, `target = "ghost"`)], "\n")+1, 1, `no target named "ghost"`)
	src = strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\nmode = \"loud\"\n[targets.credential]\ntype = \"bearer\"", 1)
	ps = problemsOf(t, src)
	wantProblem(t, ps, 6, 1, "targets[0].mode: must be plain or fancy")
	wantProblem(t, ps, 7, 1, "targets[0].credential.token: is required")
	src = minimal + "\n[[targets]]\nname = \"o\"\nprotocol = \"other\"\nupstream = \"x\"\n[[listeners]]\nname = \"o\"\nprotocol = \"fake\"\nlisten = \"127.0.0.1:8081\"\n[[listeners.routes]]\ntarget = \"o\"\n"
	wantProblem(t, problemsOf(t, src), strings.Count(src[:strings.Index(src, `target = "o"`)], "\n")+1, 1, `target "o" speaks other, the listener fake`)
	// A value of the wrong type in the protocol's keys, where it is written.
	src = strings.Replace(minimal, `listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\nmax_bytes = \"big\"", 1)
	if ps := problemsOf(t, src); len(ps) != 1 || ps[0].Line != 11 || !strings.Contains(ps[0].Message, "max_bytes") {
		t.Errorf("type mismatch: %v", ps)
	}
}

func TestUnknownProtocolListsTheRegistered(t *testing.T) {
	src := strings.Replace(minimal, "protocol = \"fake\"\nlisten", "protocol = \"gopher\"\nlisten", 1)
	line := strings.Count(src[:strings.Index(src, `"gopher"`)], "\n") + 1
	wantProblem(t, problemsOf(t, src), line, 1, `listeners[0].protocol: unknown protocol "gopher" (this build serves: fake, other)`)
	src = strings.Replace(minimal, "protocol = \"fake\"\nupstream", "protocol = \"gopher\"\nupstream", 1)
	line = strings.Count(src[:strings.Index(src, `"gopher"`)], "\n") + 1
	wantProblem(t, problemsOf(t, src), line, 1, `targets[0].protocol: unknown protocol "gopher" (this build serves: fake, other)`)
}

func TestValidateServeAsksTheProtocol(t *testing.T) {
	c := mustParse(t, minimal)
	err := c.ValidateServe(false)
	ps, ok := err.(Problems)
	if !ok || len(ps) != 1 || ps[0].Path != "listeners[0]" || ps[0].Line != 7 || !strings.Contains(ps[0].Message, `fake listener "http" needs tls_cert unless --dev`) {
		t.Fatalf("ValidateServe(false) = %v", err)
	}
	if err := mustParse(t, minimal+"\n[dev]\n").ValidateServe(true); err != nil {
		t.Fatalf("ValidateServe(true): %v", err)
	}
}

func TestRegisterProtocolRefusesMistakes(t *testing.T) {
	for name, p := range map[string]Protocol{
		"no name":     {NewListener: func() Options { return &otherListener{} }},
		"no listener": {Name: "x"},
		"twice":       {Name: "fake", NewListener: func() Options { return &otherListener{} }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			RegisterProtocol(p)
		}()
	}
}
