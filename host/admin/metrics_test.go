package admin

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Each plugin's counters are a series labelled with its name, and a name
// with a quote cannot break the format.
func TestPluginMetrics(t *testing.T) {
	o := Options{PluginStats: func() []PluginStats {
		return []PluginStats{{Name: "guard", Failures: 3, PoolWaits: 7, PoolExhausted: 1}, {Name: `we"ird`}}
	}}
	rec := httptest.NewRecorder()
	o.metrics(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"# TYPE tollgate_plugin_failures_total counter\n",
		`tollgate_plugin_failures_total{plugin="guard"} 3` + "\n",
		`tollgate_plugin_pool_waits_total{plugin="guard"} 7` + "\n",
		`tollgate_plugin_pool_exhausted_total{plugin="guard"} 1` + "\n",
		`tollgate_plugin_failures_total{plugin="we\"ird"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
}
