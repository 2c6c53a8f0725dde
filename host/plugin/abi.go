package plugin

import (
	"context"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tollgate-dev/tollgate/host/event"
)

// ABI v1 names; sdk/ABI.md is the contract.
const (
	hostModule    = "tollgate"
	exportABI     = "tollgate_abi_v1"
	exportOnEvent = "tollgate_on_event"
	exportOnRows  = "tollgate_on_rows"
)

// Action codes a handler returns.
const (
	codeAllow = 0
	codeDeny  = 2
	codeHold  = 3
)

// absent is what a getter returns for a value that does not exist.
const absent = -1

// instantiateHostModule defines the "tollgate" module in r. Every function
// finds its state in the context: a *loading while the plugin's
// _initialize runs, a *call during a handler.
func instantiateHostModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(hostModule)
	// Stack-based functions: wazero's reflective WithFunc costs about a
	// microsecond per call, and a plugin makes several calls per event.
	fn := func(name string, params, results int, f func(ctx context.Context, m api.Module, s []uint64)) {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(f), i32s(params), i32s(results)).
			Export(name)
	}
	ret := func(s []uint64, v int32) { s[0] = api.EncodeI32(v) }
	u := func(s []uint64, i int) uint32 { return api.DecodeU32(s[i]) }

	fn("config", 2, 1, func(ctx context.Context, m api.Module, s []uint64) {
		p := pluginFrom(ctx)
		if p == nil {
			ret(s, absent)
			return
		}
		ret(s, put(m, u(s, 0), u(s, 1), p.configJSON))
	})
	fn("subscribe", 2, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if l, ok := ctx.Value(stateKey{}).(*loading); ok {
			l.p.subscribe(read(m, u(s, 0), u(s, 1)))
		}
	})
	fn("config_schema", 2, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if l, ok := ctx.Value(stateKey{}).(*loading); ok {
			l.p.declareSchema(m, u(s, 0), u(s, 1))
		}
	})
	fn("subscribe_rows", 3, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if l, ok := ctx.Value(stateKey{}).(*loading); ok {
			l.p.subscribeRows(read(m, u(s, 0), u(s, 1)), api.DecodeI32(s[2]))
		}
	})
	fn("pattern", 2, 1, func(ctx context.Context, m api.Module, s []uint64) {
		p := pluginFrom(ctx)
		if p == nil {
			ret(s, absent)
			return
		}
		id, err := p.compilePattern(read(m, u(s, 0), u(s, 1)))
		if err != nil {
			p.log.Warn("plugin pattern rejected", "plugin", p.name, "err", err)
		}
		ret(s, id)
	})
	fn("event_get", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		v, ok := c.get(read(m, u(s, 0), u(s, 1)))
		if !ok {
			ret(s, absent)
			return
		}
		ret(s, putString(m, u(s, 2), u(s, 3), v))
	})
	fn("event_set", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		name := read(m, u(s, 0), u(s, 1))
		if c == nil || !strings.HasPrefix(name, "field.") {
			ret(s, absent)
			return
		}
		c.set(strings.TrimPrefix(name, "field."), read(m, u(s, 2), u(s, 3)))
		ret(s, 0)
	})
	fn("set_reason", 2, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if c := callFrom(ctx); c != nil {
			c.v.Reason = read(m, u(s, 0), u(s, 1))
		}
	})
	fn("add_approver", 2, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if c := callFrom(ctx); c != nil {
			c.v.ApproverGroups = append(c.v.ApproverGroups, read(m, u(s, 0), u(s, 1)))
		}
	})
	fn("annotate", 4, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if c := callFrom(ctx); c != nil {
			c.v.Annotations = append(c.v.Annotations, event.Annotation{Key: read(m, u(s, 0), u(s, 1)), Value: read(m, u(s, 2), u(s, 3))})
		}
	})
	fn("cacheable", 0, 0, func(ctx context.Context, m api.Module, s []uint64) {
		if c := callFrom(ctx); c != nil {
			c.cacheable = true
		}
	})
	fn("find", 3, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		ret(s, c.find(api.DecodeI32(s[0]), read(m, u(s, 1), u(s, 2))))
	})
	fn("mask", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		ret(s, c.mask(api.DecodeI32(s[0]), read(m, u(s, 1), u(s, 2)), u(s, 3)))
	})
	fn("mask_stream", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		ret(s, c.maskStream(api.DecodeI32(s[0]), read(m, u(s, 1), u(s, 2)), u(s, 3)))
	})
	fn("sql_classify", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		// The guest learns the classification, not the text: the
		// verdict cache keys on the classification, so statements that
		// differ only in literals share a cached verdict.
		name := read(m, u(s, 0), u(s, 1))
		c.read = append(c.read, sqlClassPrefix+name)
		v, ok := attribute(c.ev, name)
		if !ok {
			ret(s, absent)
			return
		}
		ret(s, putString(m, u(s, 2), u(s, 3), c.p.classify(v)))
	})
	fn("rows_count", 0, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil || c.ev.Rows == nil {
			ret(s, 0)
			return
		}
		ret(s, int32(len(c.ev.Rows.Values)))
	})
	fn("rows_column", 3, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		i := u(s, 0)
		if c == nil || c.ev.Rows == nil || int(i) >= len(c.ev.Rows.Columns) {
			ret(s, absent)
			return
		}
		ret(s, putString(m, u(s, 1), u(s, 2), c.ev.Rows.Columns[i].Name))
	})
	fn("rows_get", 4, 1, func(ctx context.Context, m api.Module, s []uint64) {
		cell, ok := callFrom(ctx).cell(u(s, 0), u(s, 1))
		if !ok || cell.Null {
			ret(s, absent)
			return
		}
		ret(s, put(m, u(s, 2), u(s, 3), cell.Data))
	})
	fn("rows_set", 5, 0, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if cell, ok := c.cell(u(s, 0), u(s, 1)); ok {
			*cell = event.Cell{Data: []byte(read(m, u(s, 2), u(s, 3))), Null: u(s, 4) != 0}
			c.rowsChanged++
		}
	})
	fn("rows_mask", 3, 1, func(ctx context.Context, m api.Module, s []uint64) {
		c := callFrom(ctx)
		if c == nil {
			ret(s, absent)
			return
		}
		ret(s, c.maskRows(api.DecodeI32(s[0]), api.DecodeI32(s[1]), u(s, 2)))
	})
	fn("log", 3, 0, func(ctx context.Context, m api.Module, s []uint64) {
		pl := pluginFrom(ctx)
		if pl == nil {
			return
		}
		attrs := []any{"plugin", pl.name}
		if c := callFrom(ctx); c != nil {
			attrs = append(attrs, "session_id", c.ev.SessionID)
		}
		pl.log.Info(read(m, u(s, 1), u(s, 2)), attrs...)
	})
	_, err := b.Instantiate(ctx)
	return err
}

func i32s(n int) []api.ValueType {
	ts := make([]api.ValueType, n)
	for i := range ts {
		ts[i] = api.ValueTypeI32
	}
	return ts
}

type stateKey struct{}

// loading is the state while an instance initializes.
type loading struct{ p *Plugin }

func pluginFrom(ctx context.Context) *Plugin {
	switch s := ctx.Value(stateKey{}).(type) {
	case *loading:
		return s.p
	case *call:
		return s.p
	}
	return nil
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(stateKey{}).(*call)
	return c
}

// read copies a string out of guest memory; out of range reads as "".
func read(m api.Module, p, n uint32) string {
	b, ok := m.Memory().Read(p, n)
	if !ok {
		return ""
	}
	return string(b)
}

// putString is put for a string, without copying it first.
func putString(m api.Module, buf, cap uint32, v string) int32 {
	if uint32(len(v)) <= cap && len(v) > 0 {
		mem, ok := m.Memory().Read(buf, uint32(len(v)))
		if !ok {
			return absent
		}
		copy(mem, v)
	}
	return int32(len(v))
}

// put copies v into the guest's buffer when it fits and returns len(v)
// either way, so the guest can retry with a larger buffer.
func put(m api.Module, buf, cap uint32, v []byte) int32 {
	if uint32(len(v)) <= cap && len(v) > 0 {
		if !m.Memory().Write(buf, v) {
			return absent
		}
	}
	return int32(len(v))
}
