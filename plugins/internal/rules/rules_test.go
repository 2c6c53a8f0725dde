package rules

import (
	"strings"
	"testing"
)

type ev struct {
	kind, target string
	fields       map[string]string
	groups       []string
}

func (e ev) Kind() string          { return e.kind }
func (e ev) Target() string        { return e.target }
func (e ev) Field(n string) string { return e.fields[n] }
func (e ev) Claim(string) string   { return "" }
func (e ev) Groups() []string      { return e.groups }

func TestMatch(t *testing.T) {
	rs := []Rule{
		{Name: "no-ddl-prod", Kinds: []string{"pg.query"}, Targets: []string{"prod-*"}, SQL: []string{"ddl"}},
		{Name: "no-blind-delete", Kinds: []string{"pg.query"}, WithoutWhere: true},
		{Name: "http-writes", Kinds: []string{"http.request"}, Methods: []string{"POST", "DELETE"}, Paths: []string{"/admin"}, Unless: []string{"sre"}},
		{Name: "rm", Commands: []string{"rm -rf *", "kubectl delete *"}},
		{Name: "main", Refs: []string{"refs/heads/main"}},
		{Name: "exec-only", Kinds: []string{"ssh.exec"}, Commands: []string{"mkfs*"}},
		{Name: "no-force", Kinds: []string{"git.push"}, Force: []string{"true", "unknown"}},
		{Name: "no-tag-delete", Kinds: []string{"git.push"}, Refs: []string{"refs/tags/*"}, Actions: []string{"delete"}},
	}
	sql := func(classes []string, noWhere bool) func() SQLInfo {
		return func() SQLInfo { return SQLInfo{Classes: classes, WithoutWhere: noWhere} }
	}
	for _, tc := range []struct {
		name string
		e    ev
		sql  func() SQLInfo
		want string
	}{
		{"ddl on prod", ev{kind: "pg.query", target: "prod-db"}, sql([]string{"read", "ddl"}, false), "no-ddl-prod"},
		{"ddl on staging", ev{kind: "pg.query", target: "staging"}, sql([]string{"ddl"}, false), ""},
		{"delete without where", ev{kind: "pg.query", target: "staging"}, sql([]string{"write"}, true), "no-blind-delete"},
		{"admin post", ev{kind: "http.request", fields: map[string]string{"method": "post", "path": "/admin/users"}}, nil, "http-writes"},
		{"admin post by sre", ev{kind: "http.request", fields: map[string]string{"method": "POST", "path": "/admin"}, groups: []string{"sre"}}, nil, ""},
		{"admin get", ev{kind: "http.request", fields: map[string]string{"method": "GET", "path": "/admin"}}, nil, ""},
		{"rm -rf", ev{kind: "ssh.exec", fields: map[string]string{"command": "rm -rf /var/lib/x"}}, nil, "rm"},
		{"kubectl delete", ev{kind: "kube.exec", fields: map[string]string{"command": "kubectl delete pod x"}}, nil, "rm"},
		{"ls", ev{kind: "ssh.exec", fields: map[string]string{"command": "ls -la"}}, nil, ""},
		{"rm after true", ev{kind: "ssh.exec", fields: map[string]string{"command": "true; /bin/rm -rf /x", "commands": "true\nrm -rf /x"}}, nil, "rm"},
		{"ls with commands", ev{kind: "ssh.exec", fields: map[string]string{"command": "ls; pwd", "commands": "ls\npwd"}}, nil, ""},
		{"shell line rm", ev{kind: "ssh.input", fields: map[string]string{"line": "rm -rf /x"}}, nil, "rm"},
		{"shell line rm after true", ev{kind: "ssh.input", fields: map[string]string{"line": "true; /bin/rm -rf /x", "commands": "true\nrm -rf /x"}}, nil, "rm"},
		{"shell line ls", ev{kind: "ssh.input", fields: map[string]string{"line": "ls", "commands": "ls"}}, nil, ""},
		// A rule written for exec covers a shell's lines too.
		{"exec rule on a shell line", ev{kind: "ssh.input", fields: map[string]string{"line": "mkfs.ext4 /dev/sda1"}}, nil, "exec-only"},
		{"exec rule on exec", ev{kind: "ssh.exec", fields: map[string]string{"command": "mkfs.ext4 /dev/sda1"}}, nil, "exec-only"},
		{"exec rule not on kube", ev{kind: "kube.exec", fields: map[string]string{"command": "mkfs.ext4 /dev/sda1"}}, nil, ""},
		{"push main", ev{kind: "git.push", fields: map[string]string{"ref": "refs/heads/main"}}, nil, "main"},
		{"push branch", ev{kind: "git.push", fields: map[string]string{"ref": "refs/heads/feature"}}, nil, ""},
		{"force push", ev{kind: "git.push", fields: map[string]string{"ref": "refs/heads/feature", "force": "true"}}, nil, "no-force"},
		{"force unknown", ev{kind: "git.push", fields: map[string]string{"ref": "refs/heads/feature", "force": "unknown"}}, nil, "no-force"},
		{"fast-forward", ev{kind: "git.push", fields: map[string]string{"ref": "refs/heads/feature", "force": "false", "action": "update"}}, nil, ""},
		{"tag delete", ev{kind: "git.push", fields: map[string]string{"ref": "refs/tags/v1", "force": "false", "action": "delete"}}, nil, "no-tag-delete"},
		{"tag create", ev{kind: "git.push", fields: map[string]string{"ref": "refs/tags/v1", "force": "false", "action": "create"}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.sql
			if s == nil {
				s = sql(nil, false)
			}
			got := ""
			if r := Match(rs, tc.e, s); r != nil {
				got = r.Name
			}
			if got != tc.want {
				t.Fatalf("Match = %q, want %q", got, tc.want)
			}
		})
	}
}

// The plugins subscribe to ssh.input wherever they subscribe to ssh.exec.
func TestKinds(t *testing.T) {
	if got := strings.Join(Kinds([]string{"pg.query", "ssh.exec"}), ","); got != "pg.query,ssh.exec,ssh.input" {
		t.Errorf("Kinds: %s", got)
	}
	if got := strings.Join(Kinds([]string{"ssh.input", "ssh.exec"}), ","); got != "ssh.input,ssh.exec" {
		t.Errorf("Kinds with both: %s", got)
	}
	if got := strings.Join(Kinds([]string{"pg.query"}), ","); got != "pg.query" {
		t.Errorf("Kinds without exec: %s", got)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"prod-*", "prod-db", true}, {"prod-*", "staging", false}, {"*", "", true},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"exact", "exact", true},
		{"rm -rf *", "rm -rf /", true}, {"*delete*", "kubectl delete pod", true},
	} {
		if got := Glob(tc.p, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
