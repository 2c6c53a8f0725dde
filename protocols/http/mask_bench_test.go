package http_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// BenchmarkWrkMaskGzip measures what a compressed response costs through
// the mask chain, against the same response uncompressed, in one run:
//
//	go test -run '^$' -bench BenchmarkWrkMaskGzip -benchtime 1x ./protocols/http/
//
// The upstream always answers gzip on one path (as a server with
// precompressed files does, whatever Accept-Encoding says) and identity on
// the other; the gateway decodes the first, masks both and sends both as
// identity. It prints `BENCH http_mask_gzip_response <req/s> req/s
// ratio=<gzip/plain> vs uncompressed`.
func BenchmarkWrkMaskGzip(b *testing.B) {
	if b.N > 1 {
		if maskGzipLast != nil {
			maskGzipLast.report(b)
		}
		return
	}
	wrkBin := testenv.RequireCommand(b, "wrk")
	mask := testenv.BuildWasm(b, "plugins/mask")
	const upstreamToken = "bench-upstream-secret-0123456789"

	// An 8 KiB JSON list of customers, a fifth of the values maskable.
	var doc strings.Builder
	doc.WriteString(`{"customers":[`)
	for i := 0; doc.Len() < 8<<10; i++ {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `{"id":%d,"name":"customer %d","email":"c%d@example.com","plan":"team","seats":%d}`, i, i, i, i%40)
	}
	doc.WriteString(`]}`)
	plain := []byte(doc.String())
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	gz := zb.Bytes()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/gz") {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", fmt.Sprint(len(gz)))
			w.Write(gz)
			return
		}
		h.Set("Content-Length", fmt.Sprint(len(plain)))
		w.Write(plain)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	up := ln.Addr().String()

	issuerAddr, plainAddr, gzAddr := testenv.FreeAddr(b), testenv.FreeAddr(b), testenv.FreeAddr(b)
	cfg := fmt.Sprintf(`[gateway]
id = "bench-gateway"
data_dir = "data"
log_level = "info"

[dev]
issuer_listen = %q
audience = "tollgate"

[[targets]]
name = "plain"
protocol = "http"
upstream = "http://%[2]s/plain"
[targets.credential]
type = "bearer"
token = "env:BENCH_UPSTREAM_TOKEN"

[[targets]]
name = "gz"
protocol = "http"
upstream = "http://%[2]s/gz"
[targets.credential]
type = "bearer"
token = "env:BENCH_UPSTREAM_TOKEN"

[[listeners]]
name = "plain"
protocol = "http"
listen = %[3]q
[[listeners.routes]]
target = "plain"

[[listeners]]
name = "gz"
protocol = "http"
listen = %[4]q
[[listeners.routes]]
target = "gz"

[[access]]
name = "dev-reaches-bench"
issuers = ["dev"]
targets = ["*"]

[[plugins]]
name = "mask"
path = %[5]q
timeout = "2s"
[plugins.config]
kinds = ["http.response"]

[audit]
store = "file"
`, issuerAddr, up, plainAddr, gzAddr, mask)
	g := testenv.StartGateway(b, testenv.GatewayOptions{
		Config: cfg, Dev: true,
		Env:  []string{"BENCH_UPSTREAM_TOKEN=" + upstreamToken},
		Wait: []string{plainAddr, gzAddr, issuerAddr},
	})
	out, errOut, code := g.Run("token", "-c", g.Config, "--sub", "bench", "--ttl", "1h")
	if code != 0 {
		b.Fatalf("gateway token: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	auth := "Authorization: Bearer " + strings.TrimSpace(out)

	// Both answers must arrive masked and plain before anything is timed.
	for _, addr := range []string{plainAddr, gzAddr} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("Authorization", strings.TrimPrefix(auth, "Authorization: "))
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || bytes.Contains(body.Bytes(), []byte("@example.com")) {
			b.Fatalf("%s: status %d encoding %q, body masked: %v", addr, resp.StatusCode, resp.Header.Get("Content-Encoding"), !bytes.Contains(body.Bytes(), []byte("@example.com")))
		}
	}

	if busy, ok := cpuBusy(time.Second); ok {
		fmt.Printf("# CPU busy before measuring: %.0f%%\n", busy*100)
	}
	b.ResetTimer()
	w := &wrkRun{bin: wrkBin}
	// wrk sends the one header it is given; Accept-Encoding changes
	// nothing here (the gateway asks the upstream for identity either way
	// and the gz upstream ignores it), so the pair differs only in the
	// upstream's encoding.
	w.run(b, "plain warm-up", plainAddr, auth, 2, 8, time.Second)
	w.run(b, "gzip warm-up", gzAddr, auth, 2, 8, time.Second)
	p := w.run(b, "plain", plainAddr, auth, 2, 8, 5*time.Second)
	z := w.run(b, "gzip", gzAddr, auth, 2, 8, 5*time.Second)
	b.StopTimer()
	fmt.Printf("# wrk mask plain c8: %8.0f req/s  p50 %8.1f us  p99 %9.1f us (%d-byte JSON)\n", p.rps, p.p50, p.p99, len(plain))
	fmt.Printf("# wrk mask gzip  c8: %8.0f req/s  p50 %8.1f us  p99 %9.1f us (%d bytes gzip)\n", z.rps, z.p50, z.p99, len(gz))

	rep := &wrkReport{}
	rep.add("http_mask_gzip_response", z.rps, "req/s", z.rps/p.rps, "uncompressed")
	rep.add("http_mask_gzip_added_p50", z.p50-p.p50, "us", z.p50/p.p50, "uncompressed")
	rep.metric(z.rps/p.rps, "gzip/plain_rps")
	rep.print()
	rep.report(b)
	maskGzipLast = rep
}

var maskGzipLast *wrkReport
