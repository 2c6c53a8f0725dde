package main_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Rows a run could not ship (ClickHouse was down) are shipped by the next
// start, which says so in its log (not a terminal: a service) when it
// begins, while it lasts, and when the last of them is out.
func TestSpoolReplayProgress(t *testing.T) {
	ch := testenv.NewClickHouse(t) // configured, not started
	cfg, dir, addrs := outageConfig(t, ch.Addr(), "")
	cfg = strings.Replace(cfg, "data_dir = \".tollgate\"\n", "data_dir = \".tollgate\"\nshutdown_grace = \"1s\"\n", 1)
	wait := []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["admin"]}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: wait})
	if strings.Contains(gw.Output(), "left in the spool") {
		t.Fatalf("a first start with an empty spool reports a replay:\n%s", gw.Output())
	}
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	const n = 20
	for i := range n {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if st := get(t, c, fmt.Sprintf("http://%s/demo/hello/%d", addrs["http"], i), strings.TrimSpace(tok)); st != http.StatusOK {
			t.Fatalf("GET during the outage: %d", st)
		}
	}
	gw.Stop() // the rows stay in the spool: ClickHouse never answered

	ch.Start(t)
	gw = testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: wait})
	gw.WaitOutput("the last run left in the spool: done", 1)
	out := gw.Output()
	m := regexp.MustCompile(`msg="audit: shipping (\d+) rows the last run left in the spool: started"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line says a replay started:\n%s", out)
	}
	var left int
	fmt.Sscan(m[1], &left)
	if left < 3*n { // each request: its session's open, request and close rows
		t.Errorf("the replay counts %d rows, want at least %d", left, 3*n)
	}
	if want := fmt.Sprintf(`progress="%d/%d rows (100%%)"`, left, left); !strings.Contains(out, want) {
		t.Errorf("the done line lacks %s:\n%s", want, out)
	}
}
