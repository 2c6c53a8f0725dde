package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// openCluster opens a store on every node of cl with cluster mode on.
func openCluster(t testing.TB, cl *testenv.ClickHouseCluster) *Store {
	t.Helper()
	t0 := time.Now()
	s, err := Open(context.Background(), Options{Addrs: cl.Addrs(), Database: "audit", Cluster: cl.Name})
	t.Logf("schema on the cluster in %v", time.Since(t0))
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
	t0 := time.Now()
	cl := testenv.StartClickHouseCluster(t, "tg", 2)
	t.Logf("cluster started in %v", time.Since(t0))
	s := openCluster(t, cl)
	ctx := context.Background()
	// Every statement again, ON CLUSTER (a store skips them once the
	// version is recorded, so send them here): idempotent on both nodes.
	settings := ch.Settings{"allow_experimental_low_cardinality_type": 1}
	for _, stmt := range schema.Statements(schema.Options{Database: "audit", Cluster: cl.Name}) {
		if err := s.conn.Exec(ch.Context(ctx, ch.WithSettings(settings)), stmt); err != nil {
			t.Fatalf("the cluster DDL a second time: %v\n%s", err, stmt)
		}
	}
	openCluster(t, cl)
	audittest.CheckSchema(t, s, schema.Version)
	want := "[[events Distributed] [events_local ReplicatedReplacingMergeTree] " +
		"[recordings Distributed] [recordings_local ReplicatedReplacingMergeTree] [recordings_mv MaterializedView] " +
		"[schema_version ReplicatedReplacingMergeTree] " +
		"[sessions Distributed] [sessions_local ReplicatedReplacingMergeTree] [sessions_mv MaterializedView]]"
	for _, n := range cl.Nodes {
		got := nodeQuery(t, cl, n, "SELECT name, engine FROM system.tables WHERE database = 'audit' ORDER BY name")
		if fmt.Sprint(got) != want {
			t.Errorf("node %s has %v, want %s", n.Addr(), got, want)
		}
		if v := nodeQuery(t, cl, n, "SELECT max(version) FROM schema_version"); v[0][0] != strconv.Itoa(schema.Version) {
			t.Errorf("node %s: schema_version %v", n.Addr(), v)
		}
	}

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
	// Recordings derive on the shard of their session, as sessions do.
	audittest.CheckRecording(t, s, "audit")
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

// keepOpen is the store for a pipeline whose Close must not close it.
type keepOpen struct{ audit.Store }

func (keepOpen) Close() error { return nil }

// waitFor polls cond until it holds; the deadline only keeps a broken
// run from hanging, it decides nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One shard's server dies while the gateway's pipeline writes to the
// cluster: the batches that touch its sessions fail (inserts wait for
// every shard) and wait in the spool, the parts that reached the other
// shard are written again when the batch is replayed, and once the
// server is back every row is in `events FINAL` exactly once, every
// session is closed once in `sessions FINAL`, and every chain verifies.
func TestClusterShardKilledRowsWaitInSpool(t *testing.T) {
	cl := testenv.StartClickHouseCluster(t, "tg", 2)
	s := openCluster(t, cl)
	ctx := context.Background()
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: keepOpen{s}, Spool: spool.Options{Dir: t.TempDir()}, BatchAge: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now().UTC().Add(-time.Minute)
	var sent []audit.Row
	record := func(sessions int) {
		for i := range sessions {
			rows := audittest.SessionRows(start.Add(time.Duration(len(sent)+i)*time.Millisecond), "orders-db", "run-42", 4+i%5)
			for _, r := range rows {
				if err := p.Record(r); err != nil {
					t.Fatalf("record: %v", err)
				}
			}
			sent = append(sent, rows...)
		}
	}
	shipped := func() bool { st := p.Stats(); return st.Shipped == st.Accepted }

	// Before the fault: rows arrive, and a batch delivered twice (an
	// acknowledgement lost) is written again on purpose.
	record(40)
	waitFor(t, "the first rows to ship", shipped)
	if err := s.Insert(ctx, sent[:len(sent)/2]); err != nil {
		t.Fatal(err)
	}

	// Shard 1's server is killed. Its node is the store's first
	// address, so the driver also has to fail over to node 2 for the
	// connection, and every batch with a shard-1 session fails.
	cl.Nodes[0].Kill()
	before := len(sent)
	record(40)
	waitFor(t, "an insert to fail while shard 1 is down", func() bool { st := p.Stats(); return !st.StoreReachable && st.Retries > 0 })
	if st := p.Stats(); st.Shipped >= st.Accepted {
		t.Fatalf("all %d rows shipped with shard 1 down", st.Accepted)
	}
	record(20) // more sessions while it is down

	// A gateway that starts now (a replica restarting) opens its store
	// on the node that is up: the schema is there, so it sends no ON
	// CLUSTER DDL, which would wait for the dead node.
	late, err := Open(ctx, Options{Addrs: cl.Addrs(), Database: "audit", Cluster: cl.Name})
	if err != nil {
		t.Fatalf("a store opened while shard 1 is down: %v", err)
	}
	if err := late.Insert(ctx, sent[:1]); err == nil {
		t.Errorf("an insert succeeded with shard 1 down: inserts must wait for every shard")
	}
	late.Close()
	t.Logf("shard 1 down: %+v", p.Stats())

	cl.Nodes[0].Restart(t)
	waitFor(t, "the spool to drain after the restart", shipped)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("after restart: %+v; %d rows sent, %d before the kill", p.Stats(), len(sent), before)

	var stored int
	for i, n := range cl.Nodes {
		got := nodeQuery(t, cl, n, "SELECT count(), uniqExact(session_id) FROM events_local")
		t.Logf("shard %d holds (rows, sessions) %v", i+1, got)
		c, _ := strconv.Atoi(got[0][0])
		stored += c
	}
	t.Logf("%d rows stored across shards, %d distinct: %d duplicates that FINAL hides", stored, len(sent), stored-len(sent))
	if got := query(t, s, "SELECT count() FROM events FINAL")[0][0]; got != strconv.Itoa(len(sent)) {
		t.Fatalf("events FINAL counts %s, want %d", got, len(sent))
	}
	back, err := s.Rows(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, sent, back)
	audittest.CheckSessions(t, s, sent, 100)
	if got := query(t, s, "SELECT count(), sum(closed) FROM sessions FINAL"); got[0][0] != "100" || got[0][1] != "100" {
		t.Fatalf("sessions FINAL (count, closed) = %v, want 100 closed", got)
	}
}

// The cluster and database names go into DDL as they are: anything but a
// plain identifier is refused before the server is touched.
func TestClusterNameIsAnIdentifier(t *testing.T) {
	for _, o := range []Options{
		{Addrs: []string{"127.0.0.1:1"}, Cluster: "prod; DROP TABLE x"},
		{Addrs: []string{"127.0.0.1:1"}, Cluster: "my-cluster"},
		{Addrs: []string{"127.0.0.1:1"}, Database: "a.b"},
	} {
		if s, err := Connect(o); err == nil {
			s.Close()
			t.Errorf("Connect(%+v) accepted", o)
		}
	}
	s, err := Connect(Options{Addrs: []string{"127.0.0.1:1"}, Cluster: "prod_2"})
	if err != nil {
		t.Fatalf("a plain cluster name: %v", err)
	}
	s.Close()
}
