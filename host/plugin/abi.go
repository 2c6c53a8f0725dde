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
	fn := func(name string, f any) { b.NewFunctionBuilder().WithFunc(f).Export(name) }

	fn("config", func(ctx context.Context, m api.Module, buf, cap uint32) int32 {
		p := pluginFrom(ctx)
		if p == nil {
			return absent
		}
		return put(m, buf, cap, p.configJSON)
	})
	fn("subscribe", func(ctx context.Context, m api.Module, kp, kn uint32) {
		if l, ok := ctx.Value(stateKey{}).(*loading); ok {
			l.p.subscribe(read(m, kp, kn))
		}
	})
	fn("pattern", func(ctx context.Context, m api.Module, sp, sn uint32) int32 {
		p := pluginFrom(ctx)
		if p == nil {
			return absent
		}
		id, err := p.compilePattern(read(m, sp, sn))
		if err != nil {
			p.log.Warn("plugin pattern rejected", "plugin", p.name, "err", err)
			return absent
		}
		return id
	})
	fn("event_get", func(ctx context.Context, m api.Module, np, nn, buf, cap uint32) int32 {
		c := callFrom(ctx)
		if c == nil {
			return absent
		}
		name := read(m, np, nn)
		v, ok := c.get(name)
		if !ok {
			return absent
		}
		return put(m, buf, cap, []byte(v))
	})
	fn("event_set", func(ctx context.Context, m api.Module, np, nn, vp, vn uint32) int32 {
		c := callFrom(ctx)
		name := read(m, np, nn)
		if c == nil || !strings.HasPrefix(name, "field.") {
			return absent
		}
		c.set(strings.TrimPrefix(name, "field."), read(m, vp, vn))
		return 0
	})
	fn("set_reason", func(ctx context.Context, m api.Module, p, n uint32) {
		if c := callFrom(ctx); c != nil {
			c.v.Reason = read(m, p, n)
		}
	})
	fn("add_approver", func(ctx context.Context, m api.Module, p, n uint32) {
		if c := callFrom(ctx); c != nil {
			c.v.ApproverGroups = append(c.v.ApproverGroups, read(m, p, n))
		}
	})
	fn("annotate", func(ctx context.Context, m api.Module, kp, kn, vp, vn uint32) {
		if c := callFrom(ctx); c != nil {
			c.v.Annotations = append(c.v.Annotations, event.Annotation{Key: read(m, kp, kn), Value: read(m, vp, vn)})
		}
	})
	fn("cacheable", func(ctx context.Context) {
		if c := callFrom(ctx); c != nil {
			c.cacheable = true
		}
	})
	fn("find", func(ctx context.Context, m api.Module, id int32, np, nn uint32) int32 {
		c := callFrom(ctx)
		if c == nil {
			return absent
		}
		return c.find(id, read(m, np, nn))
	})
	fn("mask", func(ctx context.Context, m api.Module, id int32, np, nn, strategy uint32) int32 {
		c := callFrom(ctx)
		if c == nil {
			return absent
		}
		return c.mask(id, read(m, np, nn), strategy)
	})
	fn("mask_stream", func(ctx context.Context, m api.Module, id int32, np, nn, strategy uint32) int32 {
		c := callFrom(ctx)
		if c == nil {
			return absent
		}
		return c.maskStream(id, read(m, np, nn), strategy)
	})
	fn("rows_count", func(ctx context.Context) int32 {
		c := callFrom(ctx)
		if c == nil || c.ev.Rows == nil {
			return 0
		}
		return int32(len(c.ev.Rows.Values))
	})
	fn("rows_column", func(ctx context.Context, m api.Module, i, buf, cap uint32) int32 {
		c := callFrom(ctx)
		if c == nil || c.ev.Rows == nil || int(i) >= len(c.ev.Rows.Columns) {
			return absent
		}
		return put(m, buf, cap, []byte(c.ev.Rows.Columns[i].Name))
	})
	fn("rows_get", func(ctx context.Context, m api.Module, row, col, buf, cap uint32) int32 {
		c := callFrom(ctx)
		cell, ok := c.cell(row, col)
		if !ok || cell.Null {
			return absent
		}
		return put(m, buf, cap, cell.Data)
	})
	fn("rows_set", func(ctx context.Context, m api.Module, row, col, vp, vn, null uint32) {
		c := callFrom(ctx)
		if cell, ok := c.cell(row, col); ok {
			*cell = event.Cell{Data: []byte(read(m, vp, vn)), Null: null != 0}
			c.rowsChanged++
		}
	})
	fn("rows_mask", func(ctx context.Context, id, col int32, strategy uint32) int32 {
		c := callFrom(ctx)
		if c == nil {
			return absent
		}
		return c.maskRows(id, col, strategy)
	})
	fn("log", func(ctx context.Context, m api.Module, level, p, n uint32) {
		pl := pluginFrom(ctx)
		if pl == nil {
			return
		}
		attrs := []any{"plugin", pl.name}
		if c := callFrom(ctx); c != nil {
			attrs = append(attrs, "session_id", c.ev.SessionID)
		}
		pl.log.Info(read(m, p, n), attrs...)
	})
	_, err := b.Instantiate(ctx)
	return err
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
