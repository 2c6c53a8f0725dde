package config

import (
	"strings"
	"testing"
)

const clickhouseAudit = `
[audit]
store = "clickhouse"
[audit.clickhouse]
addrs = ["127.0.0.1:9000"]
`

func TestDurabilityDefaultsAndOverride(t *testing.T) {
	c := mustParse(t, minimal+clickhouseAudit)
	if c.Audit.Durability != DefaultDurability || c.Targets[0].Durability != DefaultDurability {
		t.Fatalf("clickhouse store: audit %q, target %q, want the default %q", c.Audit.Durability, c.Targets[0].Durability, DefaultDurability)
	}
	// The file store has no spool to fsync: spooled, whatever the default.
	if c := mustParse(t, minimal); c.Audit.Durability != DurabilitySpooled || c.Targets[0].Synced() {
		t.Fatalf("file store: audit %q, target %q, want spooled", c.Audit.Durability, c.Targets[0].Durability)
	}
	src := strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, `upstream = "http://127.0.0.1:9000"
durability = "synced"`, 1) + `
[[targets]]
name = "other"
protocol = "fake"
upstream = "http://127.0.0.1:9001"
` + strings.Replace(clickhouseAudit, `store = "clickhouse"`, `store = "clickhouse"
durability = "spooled"`, 1)
	c = mustParse(t, src)
	if !c.Targets[0].Synced() || c.Targets[1].Synced() || c.Audit.Durability != DurabilitySpooled {
		t.Fatalf("override: api %q, other %q (inherits), audit %q", c.Targets[0].Durability, c.Targets[1].Durability, c.Audit.Durability)
	}
}

func TestDurabilityProblems(t *testing.T) {
	for name, tc := range map[string]struct{ src, path, want string }{
		"unknown word": {minimal + strings.Replace(clickhouseAudit, `store = "clickhouse"`, `store = "clickhouse"
durability = "fsync"`, 1), "audit.durability", "must be spooled or synced"},
		"synced with the file store": {minimal + `
[audit]
durability = "synced"
`, "audit.durability", "synced needs the spool"},
		"a synced target with the file store": {strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, `upstream = "http://127.0.0.1:9000"
durability = "synced"`, 1), "targets[0].durability", "synced needs the spool"},
		"synced with a spool that never fsyncs": {minimal + strings.Replace(clickhouseAudit, `store = "clickhouse"`, `store = "clickhouse"
durability = "synced"`, 1) + `
[audit.spool]
sync = "never"
`, "audit.durability", "forbids"},
	} {
		t.Run(name, func(t *testing.T) {
			ps := problemsOf(t, tc.src)
			for _, p := range ps {
				if p.Path == tc.path && strings.Contains(p.Message, tc.want) {
					return
				}
			}
			t.Fatalf("no problem at %s containing %q; got:\n%v", tc.path, tc.want, ps)
		})
	}
}
