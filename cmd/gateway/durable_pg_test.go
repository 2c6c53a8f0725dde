package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// In synced mode a SIGKILL while statements are in flight, in the simple
// and the extended protocol, loses no row of a statement whose result the
// client got: after a restart each has exactly one pg.query row and one
// pg.forward row in the analyst view.
func TestSyncedPostgresLosesNoAnsweredRowToSIGKILL(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	ch := testenv.StartClickHouse(t)
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "pg", "admin"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[gateway]
id = "durable-pg"
data_dir = ".tollgate"

[dev]
issuer_listen = %q
audience = "tollgate"

[[targets]]
name = "app"
protocol = "postgres"
upstream = %q
database = "postgres"
sslmode = "disable"
durability = "synced"
[targets.credential]
type = "password"
username = %q
password = "env:PG_TARGET_PASSWORD"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = %q
allow_plaintext = true

[[access]]
name = "dev-reaches-app"
issuers = ["dev"]
targets = ["app"]

[admin]
listen = %q

[audit]
store = "clickhouse"
batch_age = "100ms"
[audit.clickhouse]
addrs = [%q]
database = "durable_pg"
`, addrs["issuer"], pg.Addr(), pg.User, addrs["pg"], addrs["admin"], ch.Addr())
	env := []string{"PG_TARGET_PASSWORD=" + pg.Password}
	wait := []string{addrs["issuer"], addrs["pg"], addrs["admin"]}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: env, Wait: wait})
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	host, port, _ := net.SplitHostPort(addrs["pg"])
	url := fmt.Sprintf("postgres://agent:%s@%s:%s/app?sslmode=disable", strings.TrimSpace(tok), host, port)

	answered := map[string]bool{} // the statements whose result came back
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		// Even clients speak the simple protocol, odd ones the extended.
		mode := pgx.QueryExecModeSimpleProtocol
		if c%2 == 1 {
			mode = pgx.QueryExecModeExec
		}
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatalf("connect through the gateway: %v\n%s", err, gw.Output())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(context.Background())
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("k-%d-%d", c, i)
				sql := "SELECT '" + tag + "'"
				var got string
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := conn.QueryRow(ctx, sql, mode).Scan(&got)
				cancel()
				if err != nil {
					return // the gateway is gone
				}
				if got == tag {
					mu.Lock()
					answered[sql] = true
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
	gw.Signal(syscall.SIGKILL)
	<-gw.Exited()
	close(stop)
	wg.Wait()

	restartAndShip(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: env, Wait: wait}, addrs["admin"])
	bySQL := rowsByRequest(t, ch.Addr(), "durable_pg", "sql", "pg.query", "pg.forward")
	rows, forward := bySQL["pg.query"], bySQL["pg.forward"]
	missing := 0
	for sql := range answered {
		if rows[sql] != 1 || forward[sql] != 1 {
			missing++
			if missing <= 5 {
				t.Errorf("%s answered: %d pg.query rows, %d pg.forward rows, want 1 each", sql, rows[sql], forward[sql])
			}
		}
	}
	cut := 0
	for sql := range forward {
		if rows[sql] == 0 {
			cut++
		}
	}
	t.Logf("synced postgres: %d statements answered, %d without their rows; %d forward rows without a result (cut by the kill)", len(answered), missing, cut)
}
