// Tests of the built-in plugins through the real host: each plugin is
// compiled to Wasm with the standard toolchain and loaded as in production.
package plugins_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

var (
	hostOnce sync.Once
	host     *plugin.Host
)

func load(t *testing.T, name string, cfg map[string]any) *plugin.Plugin {
	t.Helper()
	hostOnce.Do(func() {
		h, err := plugin.NewHost(plugin.Options{CacheDir: filepath.Join(os.TempDir(), "tollgate-test-wazero-cache"), MaskKey: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		host = h
	})
	wasm := testenv.WasmBytes(t, "plugins/"+name)
	p, err := host.Load(context.Background(), config.Plugin{Name: name, Config: cfg}, wasm,
		plugin.Limits{MemoryPages: 512, Timeout: 2e9, Instances: 2})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func query(target, sql string) *event.Event {
	return &event.Event{Phase: event.Request, Protocol: "postgres", Kind: "pg.query", SessionID: "s", Target: target,
		Principal: &event.Principal{Subject: "repo:acme/app", Groups: []string{"ci"}},
		Fields:    map[string]string{"sql": sql}}
}

func annotation(v event.Verdict, k string) string {
	for _, a := range v.Annotations {
		if a.Key == k {
			return a.Value
		}
	}
	return ""
}

func TestGuard(t *testing.T) {
	g := load(t, "guard", map[string]any{"rules": []map[string]any{
		{"name": "no-ddl-on-prod", "kinds": []string{"pg.query"}, "targets": []string{"prod-*"}, "sql": []string{"ddl", "dcl", "admin"}},
		{"name": "no-blind-writes", "kinds": []string{"pg.query"}, "without_where": true, "reason": "UPDATE and DELETE need a WHERE"},
		{"name": "read-only-api", "kinds": []string{"http.request"}, "methods": []string{"POST", "PUT", "DELETE"}, "paths": []string{"/api/"}},
		{"name": "no-rm", "kinds": []string{"ssh.exec"}, "commands": []string{"rm -rf *", "*mkfs*"}},
		{"name": "protect-main", "kinds": []string{"git.push"}, "refs": []string{"refs/heads/main", "refs/tags/*"}},
		{"name": "no-locks", "kinds": []string{"pg.query"}, "targets": []string{"staging"}, "sql": []string{"lock"}},
		{"name": "no-lifts", "kinds": []string{"pg.query"}, "targets": []string{"staging"}, "sql": []string{"lift_read_only"}},
	}, "read_only_targets": []string{"ro-*"}})
	ctx := context.Background()
	for _, tc := range []struct {
		name, target, sql string
		deny              string // "" means allowed
	}{
		{"plain select", "prod-db", "SELECT id, email FROM users WHERE id = $1", ""},
		{"ddl on prod", "prod-db", "DROP TABLE users", "denied by guard rule no-ddl-on-prod"},
		{"ddl on staging", "staging", "create table t (id int)", ""},
		{"ddl behind a comment", "prod-db", "/* harmless */ DrOp TABLE users", "no-ddl-on-prod"},
		{"ddl after a select", "prod-db", "SELECT 1; DROP TABLE users", "no-ddl-on-prod"},
		{"grant on prod", "prod-db", "GRANT ALL ON users TO mallory", "no-ddl-on-prod"},
		{"delete without where", "staging", "DELETE FROM orders", "UPDATE and DELETE need a WHERE"},
		{"update without where", "staging", "update orders set total = 0 -- where id = 1", "need a WHERE"},
		{"delete with where", "staging", "DELETE FROM orders WHERE id = 7", ""},
		{"delete hidden in a CTE", "staging", "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone", "need a WHERE"},
		{"where only in a string", "staging", "DELETE FROM orders -- 'WHERE id = 1'", "need a WHERE"},
		{"DO block", "staging", "DO $$ BEGIN DELETE FROM orders; END $$", "cannot be classified"},
		{"EXECUTE", "staging", "EXECUTE cleanup(1)", "cannot be classified"},
		{"CALL", "staging", "CALL purge()", "cannot be classified"},
		{"split keyword", "staging", "DEL/**/ETE FROM orders", "cannot be classified"},
		{"dollar-quoted text", "prod-db", "SELECT $x$ DROP TABLE users $x$", ""},
		{"merge delete without condition", "staging", "MERGE INTO orders o USING gone g ON o.id = g.id WHEN MATCHED THEN DELETE", "need a WHERE"},
		{"merge update on true", "staging", "merge into orders using (select 1) s on true when matched then update set total = 0", "need a WHERE"},
		{"merge by source", "staging", "MERGE INTO orders o USING keep k ON o.id = k.id WHEN NOT MATCHED BY SOURCE THEN DELETE", "need a WHERE"},
		{"merge in a CTE", "staging", "WITH m AS (MERGE INTO orders USING s ON true WHEN MATCHED THEN DELETE RETURNING *) SELECT 1", "need a WHERE"},
		{"merge with conditions", "staging", "MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED AND s.void THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)", ""},
		{"lock", "staging", "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "no-locks"},
		{"lock elsewhere", "prod-db", "LOCK orders", ""},
		{"lift read-only", "staging", "SET default_transaction_read_only = off", "no-lifts"},
		{"lift by discard all", "staging", "DISCARD ALL", "no-lifts"},
		{"read-only target: select", "ro-db", "SELECT * FROM orders WHERE id = 1", ""},
		{"read-only target: begin read only", "ro-db", "BEGIN READ ONLY; SELECT 1; COMMIT", ""},
		{"read-only target: update", "ro-db", "UPDATE orders SET total = 0 WHERE id = 1", "read-only"},
		{"read-only target: begin read write", "ro-db", "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE", "read-only"},
		{"read-only target: set", "ro-db", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "read-only"},
		{"read-only target: set_config", "ro-db", "SELECT set_config('default_transaction_read_only', 'off', false)", "read-only"},
		{"read-only target: reset all", "ro-db", "RESET ALL", "read-only"},
		{"read-only target: lock", "ro-db", "LOCK orders IN ACCESS SHARE MODE", "read-only"},
		{"read-only target: nextval", "ro-db", "SELECT nextval('orders_id_seq')", "read-only"},
		{"read-only target: unknown", "ro-db", "CALL purge()", "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := g.Process(ctx, query(tc.target, tc.sql))
			if err != nil {
				t.Fatal(err)
			}
			if tc.deny == "" {
				if v.Action != event.Allow || annotation(v, "guard.sql") == "" {
					t.Fatalf("want allow with a guard.sql annotation, got %+v", v)
				}
				return
			}
			if v.Action != event.Deny || !strings.Contains(v.Reason, tc.deny) {
				t.Fatalf("want deny %q, got %+v", tc.deny, v)
			}
		})
	}
	for _, tc := range []struct {
		kind   string
		fields map[string]string
		deny   bool
	}{
		{"http.request", map[string]string{"method": "POST", "path": "/api/orders"}, true},
		{"http.request", map[string]string{"method": "GET", "path": "/api/orders"}, false},
		{"ssh.exec", map[string]string{"command": "rm -rf /srv/data"}, true},
		{"ssh.exec", map[string]string{"command": "ls -la /srv"}, false},
		// A shell's line meets the rules written for ssh.exec.
		{"ssh.input", map[string]string{"line": "rm -rf /srv/data"}, true},
		{"ssh.input", map[string]string{"line": "true; /sbin/mkfs.ext4 /dev/sda", "commands": "true\nmkfs.ext4 /dev/sda"}, true},
		{"ssh.input", map[string]string{"line": "ls -la /srv"}, false},
		{"git.push", map[string]string{"ref": "refs/heads/main"}, true},
		{"git.push", map[string]string{"ref": "refs/heads/fix-123"}, false},
	} {
		ev := &event.Event{Kind: tc.kind, Target: "t", Principal: &event.Principal{Subject: "x"}, Fields: tc.fields}
		v, err := g.Process(ctx, ev)
		if err != nil || (v.Action == event.Deny) != tc.deny {
			t.Errorf("%s %v: %+v %v", tc.kind, tc.fields, v, err)
		}
	}
}

func TestMaskRowsAndBodies(t *testing.T) {
	m := load(t, "mask", map[string]any{"columns": []string{"*token*", "api_key"}, "strategy": "partial"})
	ctx := context.Background()
	rows := &event.Event{Kind: "pg.rows", Protocol: "postgres", Rows: &event.Rows{
		Columns: []event.Column{{Name: "id"}, {Name: "Email"}, {Name: "access_token"}, {Name: "note"}, {Name: "raw", Binary: true}},
		Values: [][]event.Cell{
			{{Data: []byte("1")}, {Data: []byte("alice@example.com")}, {Data: []byte("tok-123456")}, {Data: []byte("card 4111 1111 1111 1111 on file")}, {Data: []byte("AKIAZ7XQ4WRT2LMN5KPB")}},
			{{Data: []byte("2")}, {Data: []byte("not an email")}, {Null: true}, {Data: []byte("nothing here")}, {Data: []byte("x")}},
		},
	}}
	v, err := m.Process(ctx, rows)
	if err != nil || v.Action != event.Rewrite {
		t.Fatalf("verdict %+v %v", v, err)
	}
	r := rows.Rows.Values
	if s := string(r[0][1].Data); strings.Contains(s, "alice@example.com") || !strings.HasSuffix(s, ".com") {
		t.Errorf("email partially masked: %q", s)
	}
	if s := string(r[0][2].Data); strings.Contains(s, "123456") {
		t.Errorf("token column masked whole: %q", s)
	}
	if s := string(r[0][3].Data); strings.Contains(s, "4111 1111 1111 1111") || !strings.HasPrefix(s, "card ") {
		t.Errorf("card number in free text: %q", s)
	}
	if !r[0][4].Null || annotation(v, "masked_binary_as_null") != "1" {
		t.Errorf("a secret in a binary value becomes NULL and says so: %+v %v", r[0][4], v.Annotations)
	}
	if string(r[1][1].Data) != "not an email" || string(r[0][0].Data) != "1" || !r[1][2].Null {
		t.Errorf("clean values untouched: %+v", r[1])
	}
	if annotation(v, "mask.columns") != "access_token" {
		t.Errorf("annotations %v", v.Annotations)
	}
	// The audit row says what fired where, and never the value.
	if annotation(v, "detect.column.Email") != "email=1" || annotation(v, "detect.column.note") != "credit_card=1" ||
		annotation(v, "detect.column.access_token") != "whole=1" {
		t.Errorf("detector annotations %v", v.Annotations)
	}
	for _, a := range v.Annotations {
		if strings.Contains(a.Value, "alice") || strings.Contains(a.Value, "4111") {
			t.Errorf("annotation %s holds a value: %q", a.Key, a.Value)
		}
	}

	body := &event.Event{Kind: "http.response", Fields: map[string]string{
		"body": `{"user":"bob@example.org","key":"AKIAZ7XQ4WRT2LMN5KPB","n":1}`}}
	v, _ = m.Process(ctx, body)
	if v.Action != event.Rewrite || strings.Contains(body.Fields["body"], "bob@example.org") || strings.Contains(body.Fields["body"], "AKIAZ7XQ4WRT2LMN5KPB") {
		t.Fatalf("body: %q %+v", body.Fields["body"], v)
	}
	// The key is found by aws-access-token and, as "key": "...", by
	// generic-api-key: the merged span keeps one of the two kinds.
	if got := annotation(v, "detect.body"); !strings.Contains(got, "email=1") ||
		!(strings.Contains(got, "aws-access-token=1") || strings.Contains(got, "generic-api-key=1")) {
		t.Errorf("body detector annotation %q", got)
	}
}

func TestRedactStreamSplitSecret(t *testing.T) {
	r := load(t, "redact", nil)
	ctx := context.Background()
	// A real token's entropy: gitleaks' github-pat leaves low-entropy
	// placeholders such as "a1B2a1B2..." alone.
	secret := "ghp_R7kQ2mZx9LpV4tNw8YbC3sJd6FhG1aEu5XoK"
	text := "deploying...\nexport GITHUB_TOKEN=" + secret + "\ndone\n"
	for cut := 1; cut < len(text); cut += 7 {
		var out strings.Builder
		var fired []string
		for i, chunk := range []string{text[:cut], text[cut:]} {
			ev := &event.Event{Kind: "ssh.output", SessionID: "sess-" + itoa(cut), Fields: map[string]string{"data": chunk}}
			if i == 1 {
				ev.Fields["eos"] = "1"
			}
			v, err := r.Process(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(ev.Fields["data"])
			if a := annotation(v, "detect.data"); a != "" {
				fired = append(fired, a)
			}
		}
		// The secret counts once, where it was masked, wherever the cut
		// (as github-pat, or generic-api-key for GITHUB_TOKEN=: one span).
		if len(fired) != 1 || (fired[0] != "github-pat=1" && fired[0] != "generic-api-key=1") {
			t.Fatalf("cut at %d: detector annotations %q, want the one secret counted once", cut, fired)
		}
		got := out.String()
		if strings.Contains(got, secret[4:20]) || !strings.HasPrefix(got, "deploying...") || !strings.HasSuffix(got, "done\n") {
			t.Fatalf("cut at %d: %q", cut, got)
		}
	}
}

// Two streams of one session (an SSH channel's stdout and stderr) told
// apart by the field "stream": chunks that interleave do not mix, and a
// secret split in each is caught.
func TestRedactInterleavedStreams(t *testing.T) {
	r := load(t, "redact", nil)
	ctx := context.Background()
	secret := "ghp_R7kQ2mZx9LpV4tNw8YbC3sJd6FhG1aEu5XoK"
	text := map[string]string{"1/stdout": "out: " + secret + "\n", "1/stderr": "err: " + secret + "\n"}
	out := map[string]*strings.Builder{"1/stdout": {}, "1/stderr": {}}
	for half := range 2 {
		for _, stream := range []string{"1/stdout", "1/stderr"} {
			t0 := text[stream]
			chunk := t0[:20]
			if half == 1 {
				chunk = t0[20:]
			}
			ev := &event.Event{Kind: "ssh.output", SessionID: "one-session", Fields: map[string]string{"data": chunk, "stream": stream}}
			if half == 1 {
				ev.Fields["eos"] = "1"
			}
			if _, err := r.Process(ctx, ev); err != nil {
				t.Fatal(err)
			}
			out[stream].WriteString(ev.Fields["data"])
		}
	}
	for stream, b := range out {
		got := b.String()
		if strings.Contains(got, secret[4:20]) || got[:5] != text[stream][:5] || !strings.HasSuffix(got, "\n") {
			t.Errorf("stream %s: %q", stream, got)
		}
	}
}

func TestApproveHolds(t *testing.T) {
	a := load(t, "approve", map[string]any{"rules": []map[string]any{
		{"name": "prod-writes", "kinds": []string{"pg.query"}, "targets": []string{"prod-*"}, "sql": []string{"write", "ddl"}, "approvers": []string{"dba", "sre"}},
	}})
	v, _ := a.Process(context.Background(), query("prod-db", "UPDATE orders SET state = 'void' WHERE id = 9"))
	if v.Action != event.Hold || strings.Join(v.ApproverGroups, ",") != "dba,sre" || !strings.Contains(v.Reason, "prod-writes") {
		t.Fatalf("hold: %+v", v)
	}
	v, _ = a.Process(context.Background(), query("prod-db", "SELECT 1"))
	if v.Action != event.Allow {
		t.Fatalf("reads pass: %+v", v)
	}
}

func itoa(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func TestMaskAllowlistPerTarget(t *testing.T) {
	m := load(t, "mask", map[string]any{"allow": []map[string]any{
		{"targets": []string{"staging-*"}, "values": []string{`alice@example\.com`, `4111 1111 1111 1111`}},
	}})
	ctx := context.Background()
	body := `{"user":"alice@example.com","other":"bob@example.com","card":"4111 1111 1111 1111"}`
	for target, keep := range map[string]bool{"staging-api": true, "prod-api": false} {
		ev := &event.Event{Kind: "http.response", Target: target, Fields: map[string]string{"body": body}}
		v, err := m.Process(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		got := ev.Fields["body"]
		if strings.Contains(got, "bob@example.com") {
			t.Errorf("%s: a value the allowlist does not name was not masked: %q", target, got)
		}
		if strings.Contains(got, "alice@example.com") != keep || strings.Contains(got, "4111 1111 1111 1111") != keep {
			t.Errorf("%s: allowlisted values kept = %v, want %v: %q %+v", target, !keep, keep, got, v)
		}
	}
}

// Request bodies are read only for a plugin that asks for them by name:
// redact does with http.request in requests and body in request_fields.
func TestRedactAsksForRequestBodies(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want bool
	}{
		{map[string]any{"requests": []string{"http.request"}}, true}, // request_fields default: query, path, body
		{map[string]any{"requests": []string{"http.request"}, "request_fields": []string{"body"}}, true},
		{map[string]any{"requests": []string{"http.request"}, "request_fields": []string{"query", "path"}}, false},
		{map[string]any{}, false},
		{map[string]any{"bodies": []string{"http.request"}}, false},
	} {
		p := load(t, "redact", tc.cfg)
		c := plugin.NewChain(p)
		if got := c.WantsField(event.WantsBody); got != tc.want {
			t.Errorf("%v: asks for request bodies: %v, want %v", tc.cfg, got, tc.want)
		}
		if got := event.WantsField(c, event.WantsBody); got != tc.want {
			t.Errorf("%v: event.WantsField: %v, want %v", tc.cfg, got, tc.want)
		}
	}
}
