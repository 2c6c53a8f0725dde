package dashboards_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/examples/dashboards"
	"github.com/tollgate-dev/tollgate/examples/queries"
)

var update = flag.Bool("update", false, "rewrite tollgate.json from the shipped queries")

// The shipped dashboard is the one built from the shipped queries: each
// panel's SQL is its query with the window bound to the dashboard's
// time range, so that a query fixed in examples/queries cannot drift
// from its panel. (examples/queries runs every shipped query on both
// stores and checks the answers.)
func TestDashboardIsBuiltFromTheShippedQueries(t *testing.T) {
	want, err := dashboards.Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("tollgate.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("tollgate.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("tollgate.json differs from the dashboard built from examples/queries: run `go test ./examples/dashboards -update`")
	}

	// Read back as Grafana does: every panel runs a shipped query, the
	// window is Grafana's, and nothing is left unbound.
	var d struct {
		Panels []struct {
			Title      string
			Type       string
			Datasource struct{ Type, UID string }
			Targets    []struct {
				RawSQL string `json:"rawSql"`
				Format int
			}
		}
	}
	if err := json.Unmarshal(got, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Panels) != len(dashboards.Panels) || len(d.Panels) < 6 {
		t.Fatalf("%d panels", len(d.Panels))
	}
	for i, p := range d.Panels {
		name := dashboards.Panels[i].Query
		sql, err := queries.Get(name)
		if err != nil {
			t.Fatalf("panel %q: %v", p.Title, err)
		}
		if p.Datasource.Type != "grafana-clickhouse-datasource" || len(p.Targets) != 1 {
			t.Fatalf("panel %q: data source %+v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
		raw := p.Targets[0].RawSQL
		if back := strings.NewReplacer("$__fromTime", "{from:DateTime}", "$__toTime", "{to:DateTime}").Replace(raw); back != sql {
			t.Errorf("panel %q: its SQL is not examples/queries/%s.sql:\n%s", p.Title, name, raw)
		}
		if !strings.Contains(raw, "$__fromTime") || strings.Contains(raw, "{from:") || strings.Contains(raw, "{to:") {
			t.Errorf("panel %q: the window is not the dashboard's time range:\n%s", p.Title, raw)
		}
	}
}

// A query with a parameter the dashboard cannot fill has no panel form:
// building its panel fails, naming the parameter.
func TestPanelRefusesAQueryWithOtherParameters(t *testing.T) {
	if _, err := dashboards.PanelSQL("who_ran_what"); err == nil || !strings.Contains(err.Error(), "parameter target") {
		t.Fatalf("who_ran_what as a panel: %v", err)
	}
	if _, err := dashboards.PanelSQL("no_such_query"); err == nil {
		t.Fatal("an unknown query made a panel")
	}
}
