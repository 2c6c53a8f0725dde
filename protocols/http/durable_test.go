package http_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// A synced target's request leaves its http.forward row (what was asked,
// the verdict) right before its http.request row in the session's chain,
// a denied request leaves no forward row (it never went out), and the
// chain with the new rows verifies.
func TestSyncedTargetRecordsForwardThenResult(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	e := start(t, envOptions{extra: fmt.Sprintf(`
[audit]
store = "clickhouse"
durability = "synced"
batch_age = "100ms"
[audit.clickhouse]
addrs = [%q]
database = "gw_synced"
`, ch.Addr())})
	tok := e.ciToken(t)
	for _, p := range []string{"/orders/api/a", "/orders/api/b"} {
		if resp, body := e.do(t, "GET", p, tok); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := e.do(t, "DELETE", "/orders/api/a", tok); resp.StatusCode != 403 {
		t.Fatalf("DELETE: %d, want 403", resp.StatusCode)
	}
	sid := e.up.Seen()[0].Header.Get("X-Tollgate-Session-Id")
	http.DefaultClient.CloseIdleConnections()
	if err := e.gw.Stop(); err != nil { // ships every row
		t.Fatal(err)
	}
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "gw_synced"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, rows, err := store.Query(context.Background(), "SELECT kind, request_values[indexOf(request_keys, 'method')], "+
		"request_values[indexOf(request_keys, 'path')], verdict, status FROM gw_synced.events FINAL WHERE session_id = toUUID('"+sid+"') ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r, " "))
	}
	want := []string{
		"session.open    ",
		"http.forward GET /api/a allow ",
		"http.request GET /api/a allow 200",
		"http.forward GET /api/b allow ",
		"http.request GET /api/b allow 200",
		"http.request DELETE /api/a  403", // refused by access: no verdict, no forward row
		"session.close    3 requests",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the session's rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out, errOut, code := e.gw.Run("audit", "verify", "-c", e.gw.Config, "--session", sid)
	if code != 0 || !strings.Contains(out, sid+"\tcomplete\t") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}
