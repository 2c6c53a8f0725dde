package plugin

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The "time" attribute is the host's clock, and a verdict that read it is
// never reused from the cache, even when the plugin says cacheable.
func TestTimeAttributeIsNeverCached(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC).Unix())
	h, err := NewHost(Options{Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.Load(ctx, config.Plugin{Name: "clock"}, testenv.WasmBytes(t, "host/plugin/testdata/guests/clock"), limitsOf(config.Plugin{Instances: 1, Timeout: config.Duration{Duration: 5 * time.Second}}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for _, tc := range []struct {
		hour int
		want event.Action
	}{{10, event.Allow}, {19, event.Deny}, {11, event.Allow}, {23, event.Deny}} {
		now.Store(time.Date(2026, 12, 8, tc.hour, 0, 0, 0, time.UTC).Unix())
		v, err := p.Process(ctx, httpEvent("GET", "/x"))
		if err != nil || v.Action != tc.want {
			t.Errorf("%02d:00: %v %v, want %v", tc.hour, v.Action, err, tc.want)
		}
	}
}

// A record-only mask changes the event (the row) but not the verdict's
// changes (the wire), is never cached, and mask_stream refuses the flag.
func TestRecordOnlyMask(t *testing.T) {
	ctx := context.Background()
	p := load(t, newHost(t), "recordonly", config.Plugin{}, Limits{})
	for i := range 3 {
		ev := httpEvent("GET", "/x")
		ev.Fields["query"] = "to=alice@example.com&n=1"
		v, err := p.Process(ctx, ev)
		if err != nil || v.Action != event.Allow || len(v.Changes) != 0 {
			t.Fatalf("call %d: %+v %v, want allow without changes", i, v, err)
		}
		if q := ev.Fields["query"]; strings.Contains(q, "alice@example.com") || !strings.HasSuffix(q, "&n=1") {
			t.Errorf("call %d: the event's query is %q", i, q)
		}
	}
}
