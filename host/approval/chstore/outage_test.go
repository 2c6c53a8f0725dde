package chstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/approval/chstore"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within 60s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A Manager starts while its ClickHouse is down; a hold is refused then
// with ErrStoreUnavailable (and its audit chain closed); once a server
// starts on that port holds work, and a decision made during a later
// outage reaches the store when it is back.
func TestManagerRidesOutAStoreOutage(t *testing.T) {
	srv := testenv.NewClickHouse(t) // nothing listens yet
	st, err := chstore.Connect(chstore.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatalf("Connect must not need the server: %v", err)
	}
	rec := &testenv.Recorder{}
	m, err := approval.New(approval.Options{Store: st, GatewayID: "gw-a", PollInterval: poll, Recorder: rec})
	if err != nil {
		t.Fatalf("New with the store down: %v", err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	req := approval.Request{SessionID: "s0", Protocol: "postgres", Kind: "pg.query", Target: "prod-db", Principal: agent,
		Fields: map[string]string{"sql": "DELETE FROM orders"}, Plugin: "approve", Reason: "writes", ApproverGroups: []string{"dba"}}
	if _, err := m.Hold(context.Background(), req); !errors.Is(err, approval.ErrStoreUnavailable) {
		t.Fatalf("Hold with the store down: %v, want ErrStoreUnavailable", err)
	}
	for _, f := range audit.Verify(rec.Rows()) {
		if f.Status != audit.StatusComplete {
			t.Errorf("the refused hold's audit chain: %+v", f)
		}
	}

	srv.Start(t)
	var p *approval.Pending
	waitUntil(t, "a hold accepted once the server is up", func() bool {
		p, err = m.Hold(context.Background(), req)
		return err == nil
	})

	// The server goes away with the request held: the decision still
	// reaches the waiter, and the store once it is back.
	srv.Kill()
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); err != nil {
		t.Fatalf("Approve during the outage: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d, err := p.Wait(ctx); err != nil || d.State != approval.StateApproved {
		t.Fatalf("the held request during the outage: %+v %v", d, err)
	}
	srv.Restart(t)
	check, err := chstore.Open(context.Background(), chstore.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	waitUntil(t, "the decision saved after the outage", func() bool {
		r, ok, err := check.Get(context.Background(), p.ID)
		return err == nil && ok && r.State == approval.StateApproved
	})
}
