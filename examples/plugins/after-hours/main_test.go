package main_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/sdk/sdktest"
)

func event(t *testing.T, at, sql string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"kind": "pg.query", "protocol": "postgres", "target": "prod-db", "time": at,
		"principal": map[string]any{"subject": "ci", "claims": map[string]string{"ref": "refs/heads/main"}},
		"fields":    map[string]string{"sql": sql}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Business hours are the config's, in its time zone: the same UTC time
// is inside them on a weekday morning and outside on a Saturday or after
// 18:00 in Berlin.
func TestHoursAndZone(t *testing.T) {
	wasm := sdktest.Build(t, ".")
	cfg, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	const del = "DELETE FROM orders WHERE id = 42"
	for _, tc := range []struct{ at, want string }{
		{"2026-12-08T10:00:00Z", "allow"}, // Tuesday 11:00 in Berlin
		{"2026-12-08T07:59:00Z", "hold"},  // 08:59 in Berlin
		{"2026-12-08T16:59:00Z", "allow"}, // 17:59
		{"2026-12-08T17:00:00Z", "hold"},  // 18:00 in Berlin, 17:00 UTC
		{"2026-12-08T07:30:00Z", "hold"},  // 08:30
		{"2026-12-05T10:00:00Z", "hold"},  // Saturday
		{"2026-12-06T12:00:00Z", "hold"},  // Sunday
	} {
		r := sdktest.Run(t, wasm, string(cfg), event(t, tc.at, del))
		if r.Action != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.at, r.Action, r.Reason, tc.want)
		}
		if tc.want == "hold" && (len(r.ApproverGroups) != 1 || r.ApproverGroups[0] != "dba") {
			t.Errorf("%s: approvers %v, want [dba]", tc.at, r.ApproverGroups)
		}
	}
}

// Outside hours, every way of writing a listed table is held, and only
// those: other tables, reads and inserts pass.
func TestWritesOutsideHours(t *testing.T) {
	wasm := sdktest.Build(t, ".")
	cfg, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	const saturday = "2026-12-05T22:30:00Z"
	for _, sql := range []string{
		"DELETE FROM orders WHERE id = 42",
		"update PAYMENTS set amount = 0",
		`DELETE FROM "orders"`,
		"DELETE FROM public.orders",
		"UPDATE/**/orders SET x = 1",
		"SELECT 1; DELETE FROM payments",
		"WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
		"TRUNCATE orders",
		"MERGE INTO orders o USING src s ON o.id = s.id WHEN MATCHED THEN DELETE",
		"DO $$ BEGIN DELETE FROM orders; END $$",
		"INSERT INTO orders VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1",
		`DELETE FROM U&"\006frders"`,
		"DELETE FROM customers WHERE id IN (SELECT customer FROM orders)",
		// Conservative: the name as a word anywhere counts, in a string too.
		"UPDATE customers SET note = 'see orders'",
	} {
		if r := sdktest.Run(t, wasm, string(cfg), event(t, saturday, sql)); r.Action != "hold" {
			t.Errorf("%q: %s (%s), want hold", sql, r.Action, r.Reason)
		}
	}
	for _, sql := range []string{
		"SELECT * FROM orders",
		"DELETE FROM orders_archive",
		"INSERT INTO orders VALUES (1)",
		"UPDATE customers SET x = 1",
	} {
		if r := sdktest.Run(t, wasm, string(cfg), event(t, saturday, sql)); r.Action != "allow" {
			t.Errorf("%q: %s (%s), want allow", sql, r.Action, r.Reason)
		}
	}
}
