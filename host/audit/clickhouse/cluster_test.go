package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/host/testenv"
)

// openCluster opens a store on every node of cl with cluster mode on.
func openCluster(t testing.TB, cl *testenv.ClickHouseCluster) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Addrs: cl.Addrs(), Database: "audit", Cluster: cl.Name})
	if err != nil {
		t.Fatalf("Open on the cluster: %v\nnode 1:\n%s\nnode 2:\n%s\nzookeeper:\n%s", err, cl.Nodes[0].Output(), cl.Nodes[1].Output(), cl.ZooKeeper.Output())
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nodeQuery runs sql on one node alone (its local tables).
func nodeQuery(t testing.TB, cl *testenv.ClickHouseCluster, n *testenv.ClickHouse, sql string) [][]string {
	t.Helper()
	s, err := Open(context.Background(), Options{Addrs: []string{n.Addr()}, Database: "audit", Cluster: cl.Name})
	if err != nil {
		t.Fatalf("open node %s: %v", n.Addr(), err)
	}
	defer s.Close()
	return query(t, s, sql)
}

// The cluster schema on two real 18.16 servers: ON CLUSTER DDL creates
// it on both, twice without harm; rows inserted through the Distributed
// events table land on the shard of their session, the sessions view
// derives on each shard, and every analyst read answers across shards.
func TestClusterSchemaAndReplay(t *testing.T) {
	cl := testenv.StartClickHouseCluster(t, "tg", 2)
	s := openCluster(t, cl)
	openCluster(t, cl) // idempotent
	audittest.CheckSchema(t, s, schema.Version)
	for _, n := range cl.Nodes {
		got := nodeQuery(t, cl, n, "SELECT name, engine FROM system.tables WHERE database = 'audit' ORDER BY name")
		t.Logf("node %s: %v", n.Addr(), got)
	}

	ctx := context.Background()
	start := time.Now().UTC().Add(-time.Minute)
	var all []audit.Row
	for i := range 20 {
		rows := audittest.SessionRows(start.Add(time.Duration(i)*time.Second), "orders-db", "run-42", 5+i%4)
		all = append(all, rows...)
	}
	if err := s.Insert(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, all[:len(all)/2]); err != nil { // a replay
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		got := nodeQuery(t, cl, n, "SELECT count(), uniqExact(session_id) FROM events_local")
		t.Logf("node %s holds %v", n.Addr(), got)
		if got[0][0] == "0" {
			t.Errorf("node %s holds no rows: the Distributed table did not shard", n.Addr())
		}
	}
	if got := query(t, s, "SELECT count() FROM events FINAL")[0][0]; got != strconv.Itoa(len(all)) {
		t.Fatalf("events FINAL counts %s, want %d", got, len(all))
	}
	audittest.CheckSessions(t, s, all, 20)
	audittest.RunExampleQueries(t, s, start)
	back, err := s.Rows(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, all, back)
}

// checkExactlyOnce: back holds every row of sent once and nothing else,
// and every session verifies complete.
func checkExactlyOnce(t *testing.T, sent, back []audit.Row) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range back {
		seen[r.EventID]++
	}
	missing, dup := 0, 0
	for _, r := range sent {
		switch seen[r.EventID] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(back) != len(sent) {
		t.Fatalf("read back %d rows for %d sent: %d missing, %d more than once", len(back), len(sent), missing, dup)
	}
	for _, f := range audit.Verify(back) {
		if f.Status != audit.StatusComplete {
			t.Errorf("verify: session %s %s: %s", f.SessionID, f.Status, f.Detail)
		}
	}
}

var _ = fmt.Sprint
var _ = spool.Options{}
