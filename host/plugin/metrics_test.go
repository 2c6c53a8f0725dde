package plugin

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

// scrape renders h's series as /metrics does (the text format).
func scrape(t *testing.T, h *Host) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(h.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// Each plugin's calls, failures by cause and pool waits are series
// labelled with its name; a name with a quote cannot break the format,
// and the counters go on when the plugin is loaded again (a reload).
func TestPluginMetrics(t *testing.T) {
	h, err := NewHost(Options{CacheDir: filepath.Join(os.TempDir(), "tollgate-test-wazero-cache"), MaskKey: []byte("test-key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	ctx := context.Background()
	// Fuel low enough that /loop spends it long before the timeout.
	starved := load(t, h, "faulty", config.Plugin{Name: "guard"}, Limits{MemoryPages: 64, Timeout: time.Minute, Fuel: 1_000_000, Instances: 1})
	for _, path := range []string{"/loop", "/panic", "/fine", "/fine"} {
		starved.Process(ctx, httpEvent("GET", path))
	}
	// A reload loads the plugin anew under the same name: its series go on.
	again := load(t, h, "faulty", config.Plugin{Name: "guard"}, Limits{MemoryPages: 64, Timeout: time.Minute, Fuel: 1_000_000, Instances: 1})
	if v, _ := again.Process(ctx, httpEvent("GET", "/panic")); v.Action != event.Deny {
		t.Fatalf("/panic: %+v", v)
	}
	weird := load(t, h, "noop", config.Plugin{Name: `we"ird`}, Limits{MemoryPages: 64, Timeout: time.Minute, Instances: 1})
	weird.Process(ctx, httpEvent("GET", "/"))

	got := scrape(t, h)
	for _, want := range []string{
		"# TYPE tollgate_plugin_failures_total counter\n",
		`tollgate_plugin_failures_total{plugin="guard"} 3` + "\n",
		`tollgate_plugin_fuel_exhausted_total{plugin="guard"} 1` + "\n",
		`tollgate_plugin_timeouts_total{plugin="guard"} 0` + "\n",
		// After a failed call its instance is gone: the next call waits for a new one.
		`tollgate_plugin_pool_waits_total{plugin="guard"} 2` + "\n",
		`tollgate_plugin_pool_exhausted_total{plugin="guard"} 0` + "\n",
		"# TYPE tollgate_plugin_call_duration_seconds histogram\n",
		`tollgate_plugin_call_duration_seconds_count{plugin="guard"} 5` + "\n",
		`tollgate_plugin_failures_total{plugin="we\"ird"} 0` + "\n",
		`tollgate_plugin_call_duration_seconds_count{plugin="we\"ird"} 1` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	// Every call took some time: the sum is positive.
	if m := regexp.MustCompile(`tollgate_plugin_call_duration_seconds_sum\{plugin="guard"\} (\S+)`).FindStringSubmatch(got); m == nil || m[1] == "0" {
		t.Errorf("call duration sum: %v", m)
	}
}
