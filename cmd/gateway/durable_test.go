package main_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// killResult is what a run of killDuringLoad saw.
type killResult struct {
	answered map[string]bool // paths the client got a whole 200 for
	rows     map[string]int  // http.request rows per path, as analysts read them (FINAL)
	forward  map[string]int  // http.forward rows per path (synced only)
	loaded   time.Duration   // from the first request to the kill
}

// killDuringLoad runs `gateway serve` with durability, drives clients
// requests through it, SIGKILLs it at a random moment while requests are
// in flight, restarts it on the same spool, lets it ship everything to a
// real ClickHouse, and reads back the rows of every path.
func killDuringLoad(t *testing.T, durability string, clients int) killResult {
	ch := testenv.StartClickHouse(t)
	cfg, dir, addrs := outageConfig(t, ch.Addr(), fmt.Sprintf("durability = %q\n", durability))
	wait := []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["admin"]}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: wait})
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	token := strings.TrimSpace(tok)

	res := killResult{answered: map[string]bool{}}
	began := time.Now()
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
			defer hc.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/k/%d-%d", c, i)
				req, _ := http.NewRequest(http.MethodGet, "http://"+addrs["http"]+"/demo"+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil {
					return // the gateway is gone
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				// Answered: the whole answer arrived (a body cut by the
				// kill is not an answer the client can use).
				if err == nil && resp.StatusCode == http.StatusOK {
					mu.Lock()
					res.answered[path] = true
					mu.Unlock()
				}
			}
		}()
	}
	// A random moment once the load runs: not aligned with the writer's
	// ticks or a batch.
	for {
		mu.Lock()
		n := len(res.answered)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
	gw.Signal(syscall.SIGKILL)
	res.loaded = time.Since(began)
	<-gw.Exited()
	close(stop)
	wg.Wait()

	// The same directory: the same spool, replayed at start.
	restartAndShip(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: wait}, addrs["admin"])
	byPath := rowsByRequest(t, ch.Addr(), "outage", "path", "http.request", "http.forward")
	res.rows, res.forward = byPath["http.request"], byPath["http.forward"]
	return res
}

// In synced mode a SIGKILL while requests are in flight loses no row of a
// request the client saw answered: after a restart, each has exactly one
// http.request row (and its http.forward row) in the analyst view.
func TestSyncedLosesNoAnsweredRowToSIGKILL(t *testing.T) {
	res := killDuringLoad(t, "synced", 8)
	missing, dup, noForward := 0, 0, 0
	for p := range res.answered {
		switch n := res.rows[p]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("%s answered 200, no http.request row", p)
			}
		case n > 1:
			dup++
			t.Errorf("%s: %d http.request rows in the analyst view, want 1", p, n)
		}
		if res.forward[p] != 1 {
			noForward++
			if noForward <= 5 {
				t.Errorf("%s answered 200, %d http.forward rows, want 1", p, res.forward[p])
			}
		}
	}
	// Every request that ran upstream has its forward row; a forward row
	// without a result row is a request cut by the kill.
	cut := 0
	for p := range res.forward {
		if res.rows[p] == 0 {
			cut++
		}
	}
	t.Logf("synced: %d answered, %d missing, %d duplicated; %d forward rows without a result (cut by the kill)",
		len(res.answered), missing, dup, cut)
}

// The same kill in spooled mode: rows of answered requests may be lost
// (the writer's interval); the count is reported, not asserted.
func TestSpooledWindowUnderSIGKILL(t *testing.T) {
	res := killDuringLoad(t, "spooled", 8)
	lost := 0
	for p := range res.answered {
		if res.rows[p] == 0 {
			lost++
		}
		if res.rows[p] > 1 {
			t.Errorf("%s: %d rows in the analyst view, want at most 1", p, res.rows[p])
		}
	}
	if len(res.forward) != 0 {
		t.Errorf("spooled mode wrote %d http.forward rows", len(res.forward))
	}
	// The window, as time: the rows lost over the rate answers came at.
	rate := float64(len(res.answered)) / res.loaded.Seconds()
	t.Logf("spooled: %d answered in %s (%.0f/s), %d lost to the SIGKILL: a window of about %.1f ms of answers",
		len(res.answered), res.loaded.Round(time.Millisecond), rate, lost, float64(lost)/rate*1000)
}

// restartAndShip starts the gateway again on the same directory (the same
// spool, replayed at start) and waits until its spool has shipped, then
// stops it.
func restartAndShip(t *testing.T, o testenv.GatewayOptions, admin string) {
	t.Helper()
	gw := testenv.StartGateway(t, o)
	for deadline := time.Now().Add(60 * time.Second); metric(t, admin, "tollgate_audit_spool_bytes") != "0"; {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted gateway did not ship its spool in 60s\n%s", gw.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
}

// rowsByRequest counts the rows of kinds in database's analyst view
// (events FINAL) by one field of their request: kind -> value -> rows.
func rowsByRequest(t *testing.T, chAddr, database, field string, kinds ...string) map[string]map[string]int {
	t.Helper()
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{chAddr}, Database: database})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	out := map[string]map[string]int{}
	for _, kind := range kinds {
		_, rows, err := store.Query(context.Background(), "SELECT request_values[indexOf(request_keys, '"+field+"')] AS v, count() FROM "+database+".events FINAL WHERE kind = '"+kind+"' GROUP BY v")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, r := range rows {
			var n int
			fmt.Sscan(r[1], &n)
			m[r[0]] = n
		}
		out[kind] = m
	}
	return out
}
