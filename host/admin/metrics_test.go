package admin

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func scrapeAdmin(t *testing.T, o Options, accept string) (string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	New(o).ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, b)
	}
	return string(b), rec.Header().Get("Content-Type")
}

// /metrics serves the registry it is given, in the text format, with the
// runtime's figures; without one, the runtime's alone. It needs no token.
func TestMetricsServesTheRegistry(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_test_total", Help: "A test counter."}, []string{"plugin"})
	if err := Register(reg, c, nil); err != nil {
		t.Fatal(err)
	}
	c.WithLabelValues(`we"ird`).Add(3)
	body, ctype := scrapeAdmin(t, Options{Metrics: reg}, "")
	if !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ctype)
	}
	for _, want := range []string{
		"# TYPE tollgate_test_total counter\n",
		`tollgate_test_total{plugin="we\"ird"} 3` + "\n",
		"# TYPE tollgate_go_goroutines gauge\n",
		"# TYPE tollgate_go_gc_cycles_total counter\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	// A collector registered twice is an error, not a panic.
	if err := Register(reg, c); err == nil {
		t.Error("registering a collector twice: no error")
	}

	body, _ = scrapeAdmin(t, Options{}, "")
	if !strings.Contains(body, "tollgate_go_memory_limit_bytes ") || strings.Contains(body, "tollgate_test_total") {
		t.Errorf("without a registry:\n%s", body)
	}
}
