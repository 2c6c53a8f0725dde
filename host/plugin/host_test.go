package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

var (
	sharedHostOnce sync.Once
	sharedHost     *Host
)

// newHost returns one Host for the package's tests, so that each guest
// compiles once (the compilation cache lives in the Host).
func newHost(t *testing.T) *Host {
	t.Helper()
	sharedHostOnce.Do(func() {
		// A compilation cache shared by test runs: each guest compiles once
		// per machine, as in production.
		h, err := NewHost(Options{CacheDir: filepath.Join(os.TempDir(), "tollgate-test-wazero-cache"), MaskKey: []byte("test-key")})
		if err != nil {
			t.Fatal(err)
		}
		sharedHost = h
	})
	return sharedHost
}

func load(t *testing.T, h *Host, guest string, cfg config.Plugin, lim Limits) *Plugin {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = guest
	}
	if lim.Instances == 0 {
		lim = limitsOf(config.Plugin{MemoryPages: lim.MemoryPages, Timeout: config.Duration{Duration: lim.Timeout}})
	}
	p, err := h.Load(context.Background(), cfg, testenv.WasmBytes(t, "host/plugin/testdata/guests/"+guest), lim)
	if err != nil {
		t.Fatalf("load %s: %v", guest, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func httpEvent(method, path string) *event.Event {
	return &event.Event{
		Phase: event.Request, Protocol: "http", Kind: "http.request", SessionID: "s-1", Target: "orders",
		Principal: &event.Principal{Issuer: "dev", Subject: "repo:acme/app", Groups: []string{"ci"},
			Claims: map[string]string{"repository": "acme/app"}},
		Fields: map[string]string{"method": method, "path": path, "query": ""},
	}
}

func annotation(v event.Verdict, k string) string {
	for _, a := range v.Annotations {
		if a.Key == k {
			return a.Value
		}
	}
	return ""
}

func TestPolicyVerdicts(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "policy", config.Plugin{Config: map[string]any{"deny_method": "DELETE"}}, Limits{})
	ctx := context.Background()

	if !p.Wants("http.request") || !p.Wants("pg.query") || p.Wants("ssh.exec") {
		t.Fatal("subscriptions not recorded from init")
	}
	v, err := p.Process(ctx, httpEvent("DELETE", "/orders/1"))
	if err != nil || v.Action != event.Deny || v.Reason != "DELETE is not allowed for repo:acme/app" || v.Plugin != "policy" {
		t.Fatalf("deny: %+v %v", v, err)
	}
	v, _ = p.Process(ctx, httpEvent("POST", "/deploy/prod"))
	if v.Action != event.Hold || v.Reason != "deploys need a human" || strings.Join(v.ApproverGroups, ",") != "sre,leads" {
		t.Fatalf("hold: %+v", v)
	}
	ev := httpEvent("GET", "/rewrite/me")
	v, _ = p.Process(ctx, ev)
	if v.Action != event.Rewrite || v.Changes["path"] != "/rewritten" || ev.Fields["header.X-Policy"] != "seen" {
		t.Fatalf("rewrite: %+v, fields %v", v, ev.Fields)
	}
	v, _ = p.Process(ctx, httpEvent("GET", "/plain"))
	if v.Action != event.Allow || annotation(v, "repository") != "acme/app" {
		t.Fatalf("allow with annotation: %+v", v)
	}
}

func TestCacheableVerdictSkipsTheCall(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "policy", config.Plugin{}, Limits{})
	ctx := context.Background()
	first, _ := p.Process(ctx, httpEvent("GET", "/cached/a"))
	second, _ := p.Process(ctx, httpEvent("GET", "/cached/a"))
	if annotation(first, "calls") == "" || annotation(first, "calls") != annotation(second, "calls") {
		t.Fatalf("the second identical event called the plugin again: %v vs %v", first.Annotations, second.Annotations)
	}
	other, _ := p.Process(ctx, httpEvent("GET", "/cached/b"))
	if annotation(other, "calls") == annotation(first, "calls") {
		t.Fatal("a different path was served from the cache")
	}
}

// A plugin that reads only a statement's classification gets one call
// per kind of statement, not per text: pgbench's SELECTs differ only in
// a literal.
func TestCachedVerdictKeysOnTheSQLClassification(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "policy", config.Plugin{}, Limits{})
	ctx := context.Background()
	q := func(sql string) event.Verdict {
		v, err := p.Process(ctx, &event.Event{Kind: "pg.query", Protocol: "postgres", Target: "db", Fields: map[string]string{"sql": sql}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := q("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
	second := q("SELECT abalance FROM pgbench_accounts WHERE aid = 99")
	if annotation(first, "calls") == "" || annotation(second, "calls") != annotation(first, "calls") {
		t.Fatalf("a SELECT differing in a literal called the plugin again: %v vs %v", first.Annotations, second.Annotations)
	}
	drop := q("DROP TABLE pgbench_accounts")
	if drop.Action != event.Deny || annotation(drop, "calls") == annotation(first, "calls") {
		t.Fatalf("DDL was answered from a SELECT's cached verdict: %+v", drop)
	}
	if again := q("DROP TABLE other"); again.Action != event.Deny {
		t.Fatalf("cached DDL verdict: %+v", again)
	}
}

// A plugin that reads more for some statements than for others (the
// target, for writes) is still answered from the cache for both shapes,
// however they alternate, and never with the other shape's verdict.
func TestCachedVerdictWithTwoShapesOfCall(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "policy", config.Plugin{}, Limits{})
	ctx := context.Background()
	q := func(target, sql string) event.Verdict {
		v, err := p.Process(ctx, &event.Event{Kind: "pg.query", Protocol: "postgres", Target: target, Fields: map[string]string{"sql": sql}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	calls := map[string]bool{}
	for i := range 4 {
		r := q("db", fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", i))
		w := q("db", fmt.Sprintf("UPDATE pgbench_accounts SET abalance = 1 WHERE aid = %d", i))
		if r.Action != event.Allow || w.Action != event.Allow {
			t.Fatalf("round %d: %+v %+v", i, r, w)
		}
		calls[annotation(r, "calls")], calls[annotation(w, "calls")] = true, true
	}
	if len(calls) != 2 {
		t.Fatalf("alternating reads and writes called the plugin %d times, want 2: %v", len(calls), calls)
	}
	if v := q("read-only-db", "UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 1"); v.Action != event.Deny {
		t.Fatalf("a write to the read-only target was answered from another target's verdict: %+v", v)
	}
	if v := q("read-only-db", "SELECT 1 FROM pgbench_accounts WHERE aid = 1"); v.Action != event.Allow {
		t.Fatalf("read on the read-only target: %+v", v)
	}
}

func TestMaskingInTheHost(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "masker", config.Plugin{}, Limits{})
	ctx := context.Background()

	ev := httpEvent("GET", "/search")
	ev.Fields["query"] = "q=alice.smith@example.com&x=1"
	v, err := p.Process(ctx, ev)
	if err != nil || v.Action != event.Rewrite || annotation(v, "masked_emails") != "yes" {
		t.Fatalf("mask: %+v %v", v, err)
	}
	if strings.Contains(ev.Fields["query"], "alice.smith@example.com") || !strings.HasSuffix(ev.Fields["query"], ".com&x=1") {
		t.Fatalf("query after partial mask: %q", ev.Fields["query"])
	}

	ev = httpEvent("GET", "/search")
	ev.Fields["query"] = "card=4111-1111"
	if v, _ := p.Process(ctx, ev); v.Action != event.Deny {
		t.Fatalf("regexp pattern: %+v", v)
	}

	rows := &event.Event{Kind: "pg.rows", Protocol: "postgres", Rows: &event.Rows{
		Columns: []event.Column{{Name: "id"}, {Name: "email"}, {Name: "secret"}, {Name: "blob", Binary: true}},
		Values: [][]event.Cell{
			{{Data: []byte("1")}, {Data: []byte("bob@example.org")}, {Data: []byte("s3cret")}, {Data: []byte("x")}},
			{{Data: []byte("2")}, {Null: true}, {Data: []byte("other")}, {Data: []byte("y")}},
		},
	}}
	v, err = p.Process(ctx, rows)
	if err != nil || v.Action != event.Rewrite {
		t.Fatalf("rows verdict: %+v %v", v, err)
	}
	got := rows.Rows.Values
	if strings.Contains(string(got[0][1].Data), "bob@example.org") || !got[1][1].Null {
		t.Errorf("email column: %q / null=%v", got[0][1].Data, got[1][1].Null)
	}
	if !got[0][2].Null || !got[1][2].Null || string(got[0][0].Data) != "1" {
		t.Errorf("secret column must be NULL, id untouched: %+v", got)
	}

	// A batch without the columns the plugin subscribed to never reaches it.
	other := &event.Event{Kind: "pg.rows", Protocol: "postgres", Rows: &event.Rows{
		Columns: []event.Column{{Name: "id"}, {Name: "note"}},
		Values:  [][]event.Cell{{{Data: []byte("1")}, {Data: []byte("carol@example.com")}}},
	}}
	if v, _ := p.Process(ctx, other); annotation(v, "rows_called") != "" || string(other.Rows.Values[0][1].Data) != "carol@example.com" {
		t.Errorf("a batch outside the plugin's columns was handed to it: %+v", v)
	}
}

func TestFaultsAreContained(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	deny := load(t, h, "faulty", config.Plugin{Name: "faulty-deny"}, Limits{MemoryPages: 64, Timeout: 200 * time.Millisecond, Instances: 2})
	allow := load(t, h, "faulty", config.Plugin{Name: "faulty-allow", OnError: "allow"}, Limits{MemoryPages: 64, Timeout: 200 * time.Millisecond, Instances: 2})

	for _, path := range []string{"/loop", "/panic", "/oom", "/recurse"} {
		t.Run(path, func(t *testing.T) {
			v, err := deny.Process(ctx, httpEvent("GET", path))
			if err != nil || v.Action != event.Deny || v.Reason != "plugin faulty-deny failed" || v.Failed == "" {
				t.Fatalf("on_error deny: %+v %v", v, err)
			}
			// The row says what failed; a Go guest's panic by its message.
			if path == "/panic" && v.Failed != "panic: the plugin author's bug" {
				t.Errorf("panic message: %q", v.Failed)
			}
			if strings.Contains(v.Failed, "wasm stack trace") || len(v.Failed) > failureMax+len("…") {
				t.Errorf("failure message: %q", v.Failed)
			}
			v, err = allow.Process(ctx, httpEvent("GET", path))
			if err != nil || v.Action != event.Allow || annotation(v, "plugin_error.faulty-allow") == "" {
				t.Fatalf("on_error allow: %+v %v", v, err)
			}
			// The failed instance was thrown away; the next call works.
			if v, _ := deny.Process(ctx, httpEvent("GET", "/fine")); v.Action != event.Allow {
				t.Fatalf("after %s the plugin no longer serves: %+v", path, v)
			}
		})
	}
}

// A plugin whose instances are all busy (here: one, spinning) refuses the
// next call after pool_wait instead of stalling it, and counts it.
func TestPoolWaitIsBounded(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", config.Plugin{Name: "busy"}, Limits{MemoryPages: 64, Timeout: 2 * time.Second, Fuel: 1 << 50, Instances: 1, PoolWait: 20 * time.Millisecond})
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		p.Process(ctx, httpEvent("GET", "/loop"))
		close(done)
	}()
	for deadline := time.Now().Add(10 * time.Second); len(p.idle) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the looping call never took the instance")
		}
		time.Sleep(time.Millisecond)
	}
	v, err := p.Process(ctx, httpEvent("GET", "/fine"))
	if err != nil || v.Action != event.Deny || !strings.Contains(v.Failed, "all 1 instances busy") {
		t.Fatalf("a call with every instance busy: %+v %v", v, err)
	}
	for _, want := range []string{`tollgate_plugin_pool_exhausted_total{plugin="busy"} 1`, `tollgate_plugin_pool_waits_total{plugin="busy"} 1`} {
		if got := scrape(t, h); !strings.Contains(got, want+"\n") {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	<-done
	if v, _ := p.Process(ctx, httpEvent("GET", "/fine")); v.Action != event.Allow {
		t.Fatalf("once the instance is back: %+v", v)
	}
}

func TestLoadRefusesNonPlugins(t *testing.T) {
	h := newHost(t)
	_, err := h.Load(context.Background(), config.Plugin{Name: "x"}, testenv.WasmBytes(t, "host/plugin/testdata/guests/noabi"), limitsOf(config.Plugin{}))
	if err == nil || !strings.Contains(err.Error(), "missing export tollgate_abi_v1") {
		t.Fatalf("err = %v", err)
	}
	_, err = h.Load(context.Background(), config.Plugin{Name: "v2"}, testenv.WasmBytes(t, "host/plugin/testdata/guests/abiv2"), limitsOf(config.Plugin{}))
	if err == nil || !strings.Contains(err.Error(), "built for plugin ABI v2; this gateway speaks v1") {
		t.Fatalf("err = %v", err)
	}
	_, err = h.Load(context.Background(), config.Plugin{Name: "junk"}, []byte("\x00asm\x01\x00\x00\x00garbage"), limitsOf(config.Plugin{}))
	if err == nil || !strings.Contains(err.Error(), "plugin junk: not a module this host can meter") {
		t.Fatalf("err = %v", err)
	}
}

func TestChainOrderAndStops(t *testing.T) {
	h := newHost(t)
	policy := load(t, h, "policy", config.Plugin{Config: map[string]any{"deny_method": "DELETE"}}, Limits{})
	masker := load(t, h, "masker", config.Plugin{}, Limits{})
	c := NewChain(masker, policy)
	ctx := context.Background()

	ev := httpEvent("GET", "/rewrite")
	ev.Fields["query"] = "who=carol@example.net"
	v, err := c.Process(ctx, ev)
	if err != nil || v.Action != event.Rewrite || v.Changes["path"] != "/rewritten" || strings.Contains(v.Changes["query"], "carol@") {
		t.Fatalf("merged rewrite: %+v %v", v, err)
	}
	ev = httpEvent("DELETE", "/x")
	ev.Fields["query"] = "card=1234-5678"
	v, _ = c.Process(ctx, ev)
	if v.Action != event.Deny || v.Plugin != "masker" {
		t.Fatalf("the first deny stops the chain: %+v", v)
	}
	// A kind nobody subscribed to passes without a call.
	if v, _ := c.Process(ctx, &event.Event{Kind: "ssh.exec"}); v.Action != event.Allow {
		t.Fatalf("unsubscribed kind: %+v", v)
	}
}

// The CPU bound is fuel: a looping plugin stops at its budget even with a
// generous wall-clock timeout, and is replaced by a fresh instance.
func TestFuelStopsALoopingPlugin(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", config.Plugin{Name: "fuel"}, Limits{MemoryPages: 64, Timeout: time.Minute, Fuel: 10_000_000, Instances: 1})
	v, _ := p.Process(context.Background(), httpEvent("GET", "/loop"))
	if v.Action != event.Deny {
		t.Fatalf("a plugin out of fuel: %+v", v)
	}
	if v, _ := p.Process(context.Background(), httpEvent("GET", "/fine")); v.Action != event.Allow {
		t.Fatalf("the next call: %+v", v)
	}
}

// A garbage collection started while a plugin spins completes before the
// plugin's call ends: the fuel check gives the Go runtime a place to stop
// the guest's goroutine, so one plugin cannot freeze the gateway.
func TestGCCompletesWhileAPluginSpins(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", config.Plugin{Name: "spin"}, Limits{MemoryPages: 64, Timeout: time.Minute, Fuel: 1_000_000_000, Instances: 1})
	callDone := make(chan struct{})
	started := time.Now()
	go func() {
		p.Process(context.Background(), httpEvent("GET", "/loop"))
		close(callDone)
	}()
	time.Sleep(100 * time.Millisecond) // let the guest start spinning
	gcDone := make(chan struct{})
	go func() { runtime.GC(); close(gcDone) }()
	select {
	case <-gcDone:
		select {
		case <-callDone:
			t.Fatalf("the plugin's call ended (after %v) before the GC could be observed; raise the fuel", time.Since(started))
		default:
		}
	case <-callDone:
		t.Fatal("the GC waited for the spinning plugin to finish")
	}
	<-callDone
}

func testenvWasm(tb testing.TB, guest string) []byte {
	return testenv.WasmBytes(tb, "host/plugin/testdata/guests/"+guest)
}

// "*" receives every kind but asks for no optional field: a request body
// costs a buffer and lands in the audit row, so it is asked for by name.
func TestStarDoesNotAskForBodies(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "noop", config.Plugin{}, Limits{MemoryPages: 64, Timeout: time.Minute})
	c := NewChain(p)
	if !c.Wants("http.request") || c.WantsField(event.WantsBody) || event.WantsField(c, event.WantsBody) {
		t.Errorf("a \"*\" plugin: wants http.request %v, asks for bodies %v", c.Wants("http.request"), c.WantsField(event.WantsBody))
	}
	if event.WantsField(Empty{}, event.WantsBody) || event.WantsField(nil, event.WantsBody) {
		t.Error("an empty chain asks for bodies")
	}
}
