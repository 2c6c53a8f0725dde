package schema

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
)

// update rewrites testdata/*.sql from the current DDL (review the diff).
var update = flag.Bool("update", false, "rewrite testdata/*.sql from the current DDL (review the diff)")

func updating() bool { return *update }

// golden compares the statements with testdata/name, one statement per
// block, blocks separated by ";\n\n". The cluster DDL also runs on a
// real two-shard 18.16 cluster in host/audit/clickhouse (cluster_test.go).
func golden(t *testing.T, name string, stmts []string) {
	t.Helper()
	got := strings.Join(stmts, ";\n\n") + ";\n"
	path := filepath.Join("testdata", name)
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the DDL (go test -run Golden -update, then review):\n%s", path, got)
	}
}

func TestGoldenCluster(t *testing.T) {
	golden(t, "cluster_prod.sql", Statements(Options{Cluster: "prod"}))
}

func TestGoldenSingle(t *testing.T) {
	golden(t, "single_18.sql", Statements(Options{Database: "audit", LowCardinalitySetting: true}))
}

func TestLowCardinalitySettingOnlyWhenAsked(t *testing.T) {
	for _, s := range Statements(Options{}) {
		if strings.Contains(s, "allow_experimental") {
			t.Fatalf("a current server would reject: %s", s)
		}
	}
	if s := Statements(Options{LowCardinalitySetting: true}); s[0] != LowCardinalitySet {
		t.Fatalf("first statement %q, want the SET", s[0])
	}
}

// The events DDL names the insert columns in Columns() order, and Values
// gives one value per column.
func TestColumnsMatchDDL(t *testing.T) {
	var ddl string
	for _, s := range Statements(Options{}) {
		if strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS tollgate.events\n") {
			ddl = s
		}
	}
	var names []string
	for _, line := range strings.Split(ddl, "\n") {
		if strings.HasPrefix(line, "    ") {
			names = append(names, strings.Fields(line)[0])
		}
	}
	if want := append(Columns(), "ingested_at"); !reflect.DeepEqual(names, want) {
		t.Fatalf("DDL columns %v\nColumns()   %v", names, want)
	}
	if n := len(Values(audit.Row{})); n != len(Columns()) {
		t.Fatalf("Values gives %d values for %d columns", n, len(Columns()))
	}
}

func TestValuesDeterministic(t *testing.T) {
	// Maps iterate in random order; Values must not, or a replay would
	// store different arrays for the same event.
	r := audit.Row{Claims: map[string]string{"b": "2", "a": "1", "c": "3"}, Time: time.Unix(10, 123456789)}
	v := Values(r)
	i := indexOf(Columns(), "claim_keys")
	if keys := v[i].([]string); !sort.StringsAreSorted(keys) || !reflect.DeepEqual(v[i+1], []string{"1", "2", "3"}) {
		t.Fatalf("claims %v %v", v[i], v[i+1])
	}
	if ts, us := v[0].(time.Time), v[1].(uint32); ts.Unix() != 10 || us != 123456 || !Join(ts, us).Equal(r.Time.Truncate(time.Microsecond)) {
		t.Fatalf("ts %v us %d", ts, us)
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// Columnar is Values transposed, value for value.
func TestColumnarIsValuesTransposed(t *testing.T) {
	rows := audittest.SessionRows(time.Now(), "orders-db", "r", 7)
	rows[2].Signature, rows[3].Groups, rows[3].Claims = "sig", nil, nil
	cols := Columnar(rows)
	if len(cols) != len(Columns()) {
		t.Fatalf("%d columns, want %d", len(cols), len(Columns()))
	}
	for i, r := range rows {
		for j, want := range Values(r) {
			got := reflect.ValueOf(cols[j]).Index(i).Interface()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("row %d column %s: %#v, want %#v", i, Columns()[j], got, want)
			}
		}
	}
}
