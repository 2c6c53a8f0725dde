package main_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/gate"

	// The protocols the binary registers (protocols.go), as it does.
	_ "github.com/tollgate-dev/tollgate/protocols/http"
	_ "github.com/tollgate-dev/tollgate/protocols/postgres"
)

// The configs the project ships parse with the protocols the binary
// serves (they moved here from host/config, which knows no protocol).
func TestShippedConfigsParse(t *testing.T) {
	for _, path := range []string{"../../gateway.toml", "../../examples/gateway.full.toml", "../../examples/postgres/gateway.toml", "../../examples/kube/gateway.toml"} {
		if _, err := config.Load(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	if got := strings.Join(gate.Protocols(), ","); got != "http,kube,postgres,ssh" {
		t.Errorf("registered protocols %q", got)
	}
}

const httpMinimal = `
[[targets]]
name = "api"
protocol = "http"
upstream = "http://127.0.0.1:9000"

[[listeners]]
name = "http"
protocol = "http"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"
`

// http-only and postgres-only keys stay where they belong: the key of
// one protocol in the other's table is refused, saying whose it is.
func TestProtocolKeysStayWhereTheyBelong(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{`upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\nsslmode = \"disable\"", "targets[0].sslmode: unknown key: applies to postgres targets only"},
		{`upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\napplication_name_suffix = false", "postgres targets only"},
		{`listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\nmax_connections = 5", "listeners[0].max_connections: unknown key: applies to postgres listeners only"},
	} {
		_, err := config.Parse("gateway.toml", []byte(strings.Replace(httpMinimal, tc.old, tc.new, 1)), t.TempDir())
		var ps config.Problems
		if !errors.As(err, &ps) || !strings.Contains(ps.Error(), tc.want) {
			t.Errorf("%q: want %q in %v", tc.new, tc.want, err)
		}
	}
	src := strings.Replace(httpMinimal, "protocol = \"http\"\nlisten", "protocol = \"gopher\"\nlisten", 1)
	_, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `gateway.toml:9:1: listeners[0].protocol: unknown protocol "gopher" (this build serves: http, kube, postgres, ssh)`) {
		t.Errorf("unknown protocol: %v", err)
	}
	pg := "\n[[targets]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:5432\"\nupgrades = []\n[targets.credential]\ntype = \"password\"\nusername = \"a\"\npassword = \"env:X\"\n"
	_, err = config.Parse("gateway.toml", []byte(httpMinimal+pg), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "targets[1].upgrades: unknown key: applies to http targets only") {
		t.Errorf("upgrades on a postgres target: %v", err)
	}
}
