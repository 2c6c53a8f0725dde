package http_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	httpproto "github.com/tollgate-dev/tollgate/protocols/http"
)

// BenchmarkProxyInProcess runs the gateway's request path in this process
// (auth from the token cache, access, empty chain, audit to a file,
// reverse proxy) against the same upstream reached directly, with Go's
// client. It is the profile-friendly sibling of BenchmarkWrk:
//
//	go test -run '^$' -bench ProxyInProcess -cpuprofile cpu.out ./protocols/http/
func BenchmarkProxyInProcess(b *testing.B) {
	body := []byte(`{"ok":true,"items":[1,2,3],"note":"a small JSON answer from an internal service"}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer up.Close()

	issLn, _ := net.Listen("tcp", "127.0.0.1:0")
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	issSrv := &http.Server{Handler: iss.Handler()}
	go issSrv.Serve(issLn)
	defer issSrv.Close()
	tok, _ := iss.Mint(identity.MintOptions{Subject: "bench", TTL: time.Hour})

	cfg, err := config.Parse("bench.toml", []byte(fmt.Sprintf(`
[[targets]]
name = "up"
protocol = "http"
upstream = %q
[[listeners]]
name = "http"
protocol = "http"
listen = "127.0.0.1:0"
[[listeners.routes]]
target = "up"
[[access]]
name = "all"
targets = ["up"]
`, up.URL)), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	rec, err := audit.OpenFile(b.TempDir() + "/audit.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	chain := plugin.Empty{}
	l, err := httpproto.New(cfg.Listeners[0], map[string]*config.Target{"up": &cfg.Targets[0]}, httpproto.Deps{
		GatewayID: "bench",
		Auth:      identity.NewVerifier([]config.Issuer{iss.IssuerConfig()}, 100, identity.Options{}),
		Policy:    access.New(cfg.Access), Chain: chain, Recorder: rec,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Start(); err != nil {
		b.Fatal(err)
	}
	defer l.Shutdown(b.Context())

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(b *testing.B, url string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { get(b, up.URL+"/items") })
	b.Run("gateway", func(b *testing.B) { get(b, "http://"+l.Addr().String()+"/items") })
}
