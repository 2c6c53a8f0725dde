package plugins_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/detect"
	"github.com/tollgate-dev/tollgate/internal/sqlclass"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
	"github.com/tollgate-dev/tollgate/plugins/internal/sqlinfo"
)

var guardRules = []map[string]any{
	{"name": "no-ddl-on-prod", "kinds": []string{"pg.query"}, "targets": []string{"prod-*"}, "sql": []string{"ddl", "dcl", "admin"}},
	{"name": "no-blind-writes", "kinds": []string{"pg.query"}, "without_where": true},
}

// sql1k is a 1 KiB query of the kind an ORM sends.
var sql1k = func() string {
	q := "SELECT o.id, o.total, o.state, c.name, c.email, a.city FROM orders o " +
		"JOIN customers c ON c.id = o.customer_id /* customer */ LEFT JOIN addresses a ON a.customer_id = c.id " +
		"WHERE o.created_at > now() - interval '7 days' AND o.state IN ('paid', 'shipped') "
	for len(q) < 1000 {
		q += "AND o.note NOT LIKE '%test%' "
	}
	return q + "LIMIT 50"
}()

// BenchmarkPlugins prints the plugin host's figures in the `make bench`
// format, each against a baseline measured in the same run.
func BenchmarkPlugins(b *testing.B) {
	if b.N > 1 {
		return // measured once, below
	}
	ctx := context.Background()
	h, err := plugin.NewHost(plugin.Options{MaskKey: []byte("bench")})
	if err != nil {
		b.Fatal(err)
	}
	lim := plugin.Limits{MemoryPages: 512, Timeout: time.Second, Instances: 2}
	loadP := func(name string, cfg map[string]any) *plugin.Plugin {
		p, err := h.Load(ctx, config.Plugin{Name: name, Config: cfg}, testenv.WasmBytes(b, "plugins/"+name), lim)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	guard := loadP("guard", map[string]any{"rules": guardRules})
	mask := loadP("mask", nil)
	redact := loadP("redact", nil)
	chain := plugin.NewChain(guard, mask, redact)

	// Native Go: the same decision the guard makes, without Wasm.
	var rs []rules.Rule
	for _, r := range guardRules {
		rule := rules.Rule{Name: r["name"].(string), Kinds: r["kinds"].([]string)}
		if t, ok := r["targets"]; ok {
			rule.Targets = t.([]string)
		}
		if s, ok := r["sql"]; ok {
			rule.SQL = s.([]string)
		}
		rule.WithoutWhere, _ = r["without_where"].(bool)
		rs = append(rs, rule)
	}
	native := perOp(20000, func(i int) {
		sql := sql1k + " -- " + strconv.Itoa(i)
		var stmts []sqlinfo.Statement
		for _, st := range sqlclass.Classify(sql) {
			stmts = append(stmts, sqlinfo.Statement{Class: st.Class.String(), Command: st.Command, HasWhere: st.HasWhere})
		}
		info := sqlinfo.Of(stmts)
		rules.Match(rs, nativeEvent{sql: sql}, func() rules.SQLInfo { return info.Rules })
	})
	distinct := perOp(5000, func(i int) {
		ev := query("prod-db", sql1k+" -- "+strconv.Itoa(i)) // distinct text: no cache hit
		if v, err := chain.Process(ctx, ev); err != nil || v.Action != event.Allow {
			b.Fatalf("%+v %v", v, err)
		}
	})
	cached := perOp(50000, func(int) {
		chain.Process(ctx, query("prod-db", sql1k))
	})
	fmt.Printf("BENCH plugin_chain_pg_query_1k %.0f ns/event ratio=%.2f vs native_go\n", distinct, distinct/native)
	fmt.Printf("BENCH plugin_chain_pg_query_1k_cached %.0f ns/event ratio=%.2f vs native_go\n", cached, cached/native)

	// mask on a 100-row x 8-column batch, against the same host-side
	// detectors called natively over the same cells.
	batch := func() *event.Event {
		cols := []string{"id", "name", "email", "amount", "created_at", "city", "note", "api_key"}
		rows := &event.Rows{}
		for _, c := range cols {
			rows.Columns = append(rows.Columns, event.Column{Name: c})
		}
		for r := 0; r < 100; r++ {
			rows.Values = append(rows.Values, []event.Cell{
				{Data: []byte(strconv.Itoa(r))}, {Data: []byte("Customer Name " + strconv.Itoa(r))},
				{Data: []byte("user" + strconv.Itoa(r) + "@example.com")}, {Data: []byte("1234.56")},
				{Data: []byte("2026-11-26 18:00:00")}, {Data: []byte("Lisbon")},
				{Data: []byte("delivered to the front door")}, {Data: []byte("k-" + strconv.Itoa(r))},
			})
		}
		return &event.Event{Kind: "pg.rows", Protocol: "postgres", Rows: rows}
	}
	set := detect.NewSet(mustBuiltins(b)...)
	nativeMask := perOp(300, func(int) {
		ev := batch()
		for _, row := range ev.Rows.Values {
			for i := range row {
				if sp := set.Find(row[i].Data, nil); len(sp) > 0 {
					row[i].Data = detect.Mask(nil, row[i].Data, sp, detect.Partial, []byte("bench"))
				}
			}
		}
	})
	wasmMask := perOp(300, func(int) {
		if _, err := mask.Process(ctx, batch()); err != nil {
			b.Fatal(err)
		}
	})
	fmt.Printf("BENCH mask_rows_100x8 %.1f us/batch ratio=%.2f vs native_go\n", wasmMask/1e3, wasmMask/nativeMask)

	// Pool: time and memory to bring up instances of a standard Go guest.
	start := time.Now()
	const n = 8
	warm, err := h.Load(ctx, config.Plugin{Name: "warm"}, testenv.WasmBytes(b, "plugins/mask"), plugin.Limits{MemoryPages: 512, Timeout: time.Second, Instances: n})
	if err != nil {
		b.Fatal(err)
	}
	if err := warm.Warm(ctx, n); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	perInst := float64(warm.InstanceMemory()) / (1 << 20)
	fmt.Printf("BENCH plugin_instance_memory %.1f MiB ratio=%.2f vs go_guest_min_37_pages\n", perInst, perInst/(37*64.0/1024))
	fmt.Printf("BENCH plugin_pool_warmup_%d %.0f ms ratio=%.2f vs per_instance\n", n, float64(elapsed.Milliseconds()), 1.0*n)
}

func perOp(n int, f func(i int)) float64 {
	for i := 0; i < n/10; i++ { // warm up
		f(-i - 1)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		f(i)
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func mustBuiltins(b *testing.B) []detect.Detector {
	var ds []detect.Detector
	for _, name := range detect.Names() {
		d, err := detect.Builtin(name)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

type nativeEvent struct{ sql string }

func (nativeEvent) Kind() string   { return "pg.query" }
func (nativeEvent) Target() string { return "prod-db" }
func (e nativeEvent) Field(n string) string {
	if n == "sql" {
		return e.sql
	}
	return ""
}
func (nativeEvent) Claim(string) string { return "" }
func (nativeEvent) Groups() []string    { return []string{"ci"} }
