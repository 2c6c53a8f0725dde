package admin

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The console's live sessions come from a real ClickHouse audit store: a
// session with an open row and no close row is listed; a closed one is not.
func TestConsoleLiveSessions(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{srv.Addr()}, Database: "console"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	open := audittest.SessionRows(now, "orders-db", "run-open", 4)[:2] // open row and one step
	closed := audittest.SessionRows(now, "orders-db", "run-closed", 4)
	if err := store.Insert(context.Background(), append(open, closed...)); err != nil {
		t.Fatal(err)
	}
	m, _ := approval.New(approval.Options{})
	defer m.Shutdown(context.Background())
	ts := httptest.NewServer(New(Options{Auth: people, Groups: []string{"auditors"}, Approvals: m, Audit: store, AuditDatabase: "console"}))
	defer ts.Close()

	c, _ := login(t, ts.URL, "auditor")
	code, body := get(t, c, ts.URL+"/ui/sessions")
	if code != 200 || !strings.Contains(body, open[0].SessionID) || strings.Contains(body, closed[0].SessionID) || !strings.Contains(body, "run-open") {
		t.Fatalf("sessions page: %d\n%s", code, body)
	}
	// Approvers who are not in the admin groups do not see sessions.
	c, _ = login(t, ts.URL, "alice")
	if code, _ := get(t, c, ts.URL+"/ui/sessions"); code != 403 {
		t.Fatalf("an approver's sessions page: %d", code)
	}
}
