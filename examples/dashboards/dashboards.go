// Package dashboards holds a Grafana dashboard over the audit trail
// (README.md here). Each panel runs one of the shipped queries in
// examples/queries, with the window bound to the dashboard's time range;
// its test builds the dashboard from those queries and checks that the
// shipped JSON is exactly that (go test -update rewrites it).
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/examples/queries"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
)

// Panels are the dashboard's panels in order: a title and the shipped
// query it runs.
var Panels = []struct{ Title, Query string }{
	{"Activity by CI repository and principal", "activity"},
	{"Denied and held actions", "denied_or_held"},
	{"Masking by target and detector", "masking_by_detector"},
	{"Slowest approvals", "slowest_approvals"},
	{"Open sessions", "open_sessions"},
	{"Top statements and requests", "top_statements"},
}

// Grafana's ClickHouse data source (grafana-clickhouse-datasource v4)
// replaces these macros with the dashboard's time range as
// toDateTime(<Unix seconds>), as the CLI binds {from} and {to}.
var macros = strings.NewReplacer("{from:DateTime}", "$__fromTime", "{to:DateTime}", "$__toTime")

// PanelSQL is a shipped query as a panel runs it: its window is the
// dashboard's time range. A query with any other parameter has no panel
// form (the dashboard has no variables for them).
func PanelSQL(name string) (string, error) {
	sql, err := queries.Get(name)
	if err != nil {
		return "", err
	}
	out := macros.Replace(sql)
	ps, err := sqlparam.Params(out)
	if err != nil {
		return "", fmt.Errorf("query %s: %w", name, err)
	}
	if len(ps) > 0 {
		return "", fmt.Errorf("query %s: parameter %s has no dashboard form", name, ps[0].Name)
	}
	return out, nil
}

// Dashboard builds the dashboard's JSON (Grafana's dashboard model,
// importable as is: the data source is a variable of type
// grafana-clickhouse-datasource).
func Dashboard() ([]byte, error) {
	ds := map[string]any{"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
	var panels []any
	for i, p := range Panels {
		sql, err := PanelSQL(p.Query)
		if err != nil {
			return nil, err
		}
		panels = append(panels, map[string]any{
			"id":          i + 1,
			"type":        "table",
			"title":       p.Title,
			"description": queries.Summary(sql) + ". The shipped query examples/queries/" + p.Query + ".sql (gateway audit query " + p.Query + ").",
			"datasource":  ds,
			"gridPos":     map[string]int{"x": (i % 2) * 12, "y": (i / 2) * 10, "w": 12, "h": 10},
			"options":     map[string]any{"showHeader": true, "cellHeight": "sm"},
			"fieldConfig": map[string]any{"defaults": map[string]any{}, "overrides": []any{}},
			"targets": []any{map[string]any{
				"refId":      "A",
				"datasource": ds,
				"editorType": "sql",
				"queryType":  "table",
				"format":     1, // table
				"rawSql":     sql,
			}},
		})
	}
	d := map[string]any{
		"uid":           "tollgate-audit",
		"title":         "Tollgate audit trail",
		"description":   "Who did what through Tollgate, from the audit tables (events). Every panel is a shipped query of examples/queries.",
		"tags":          []string{"tollgate", "audit"},
		"timezone":      "utc",
		"editable":      true,
		"schemaVersion": 39,
		"time":          map[string]string{"from": "now-24h", "to": "now"},
		"refresh":       "1m",
		"templating": map[string]any{"list": []any{map[string]any{
			"name":  "datasource",
			"label": "ClickHouse (the audit database)",
			"type":  "datasource",
			"query": "grafana-clickhouse-datasource",
		}}},
		"panels": panels,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // SQL's < and > as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return b.Bytes(), nil
}
