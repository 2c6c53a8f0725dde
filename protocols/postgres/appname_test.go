package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
)

// application_name_suffix: on (the default), the upstream session's
// application_name carries " tollgate:<session ID>"; off, it is the
// client's own, unchanged, and the client sees the same either way.
func TestApplicationNameSuffix(t *testing.T) {
	appName := func(e *env, extra string) (server, reported string) {
		c := e.connect(t, extra)
		if err := c.QueryRow(context.Background(), "SELECT current_setting('application_name')").Scan(&server); err != nil {
			t.Fatal(err)
		}
		return server, c.PgConn().ParameterStatus("application_name")
	}
	on := startEnv(t, envOptions{})
	if app, seen := appName(on, "application_name=ci-job"); !strings.HasPrefix(app, "ci-job tollgate:") || seen != "ci-job" {
		t.Fatalf("default: server %q, client told %q", app, seen)
	}
	off := startEnv(t, envOptions{pg: on.pg, target: func(tg *config.Target) {
		no := false
		targetOptions(tg).ApplicationNameSuffix = &no
	}})
	if app, seen := appName(off, "application_name=ci-job"); app != "ci-job" || seen != "ci-job" {
		t.Fatalf("application_name_suffix = false: server %q, client told %q", app, seen)
	}
	if app, _ := appName(off, ""); app != "" {
		t.Fatalf("application_name_suffix = false, no name: server %q", app)
	}
}
