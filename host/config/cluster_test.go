package config

import (
	"strings"
	"testing"
)

// [audit.clickhouse] cluster goes into ON CLUSTER DDL unquoted: only a
// plain identifier is accepted.
func TestAuditClusterName(t *testing.T) {
	src := minimal + clickhouseAudit + "cluster = %q\n"
	c := mustParse(t, strings.Replace(src, "%q", `"prod_2"`, 1))
	if c.Audit.ClickHouse.Cluster != "prod_2" {
		t.Fatalf("cluster %q", c.Audit.ClickHouse.Cluster)
	}
	for _, bad := range []string{"prod; DROP TABLE x", "my-cluster", "2nd"} {
		found := false
		for _, p := range problemsOf(t, strings.Replace(src, "%q", `"`+bad+`"`, 1)) {
			if p.Path == "audit.clickhouse.cluster" && strings.Contains(p.Message, "plain identifier") {
				found = true
			}
		}
		if !found {
			t.Errorf("cluster %q accepted", bad)
		}
	}
}
