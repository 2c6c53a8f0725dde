package http_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate-dev/tollgate/host/plugin"
)

// BenchmarkProxyInProcess runs the gateway's request path in this process
// (auth from the token cache, access, empty chain, audit in memory,
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

	p := startInProcess(b, plugin.Empty{}, up.URL, nil, nil)
	tok := p.tok

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
	b.Run("gateway", func(b *testing.B) { get(b, p.base+"/items") })
}
