package http_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Issue 17, item 9: with redact's requests configured, a secret in a
// request's query string or path reaches the upstream exactly as sent
// (a record-only change) and never appears in the audit row, however it
// is encoded; without it the row keeps the query as it was.
func TestRedactRequestFieldsInTheRowOnly(t *testing.T) {
	ctx := context.Background()
	h, err := plugin.NewHost(plugin.Options{MaskKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	wasm, err := os.ReadFile(testenv.BuildWasm(t, "plugins/redact"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(cfg map[string]any) *plugin.Chain {
		p, err := h.Load(ctx, config.Plugin{Name: "redact", Config: cfg}, wasm, plugin.Limits{MemoryPages: 512, Timeout: 5 * time.Second, Instances: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := plugin.NewChain(p)
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}

	const token = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345" // a GitHub token's shape
	up := testenv.StartUpstream(t, nil)
	gw := startInProcess(t, load(map[string]any{"requests": []string{"http.request"}}), up.URL, nil, nil)
	for _, tc := range []struct{ path, query string }{
		{"/search", "q=1&api_key=" + token},
		{"/search", "api_key=" + strings.Replace(token, "_", "%5F", 1)},   // encoded
		{"/search", "api_key=" + strings.Replace(token, "_", "%255F", 1)}, // encoded twice
		{"/repos/" + token + "/x", "a=b"},                                 // in the path
	} {
		resp, _, body := gw.get(t, tc.path+"?"+tc.query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s?%s: %d %s", tc.path, tc.query, resp.StatusCode, body)
		}
		seen := up.Seen()
		last := seen[len(seen)-1]
		if last.Query != tc.query || last.Path != tc.path {
			t.Errorf("the upstream got %s?%s, want %s?%s as sent", last.Path, last.Query, tc.path, tc.query)
		}
		row := requestRow(t, gw.rec, last.Header.Get("X-Tollgate-Session-Id"))
		for k, v := range row.Request {
			if strings.Contains(v, token[4:20]) || strings.Contains(percentDecode(v), token[4:20]) {
				t.Errorf("%s?%s: the row's %s keeps the secret: %q", tc.path, tc.query, k, v)
			}
		}
		if row.Annotations["redact.values"] == "" {
			t.Errorf("%s?%s: no redact.values annotation: %v", tc.path, tc.query, row.Annotations)
		}
		if row.Verdict == "rewrite" {
			t.Errorf("%s?%s: a record-only change made the verdict a rewrite", tc.path, tc.query)
		}
	}

	// Not configured: requests are left alone, in the row too.
	plain := startInProcess(t, load(map[string]any{}), up.URL, nil, nil)
	plain.get(t, "/search?api_key="+token)
	seen := up.Seen()
	row := requestRow(t, plain.rec, seen[len(seen)-1].Header.Get("X-Tollgate-Session-Id"))
	if row.Request["query"] != "api_key="+token {
		t.Errorf("without requests configured the row's query is %q", row.Request["query"])
	}
}

func percentDecode(s string) string {
	for range 3 {
		s = strings.NewReplacer("%25", "%", "%5F", "_", "%5f", "_").Replace(s)
	}
	return s
}
