package fuel

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Names the rewritten module uses to talk to the host.
const (
	// ImportModule is the module name of the imported refill function.
	ImportModule = "tollgate_fuel"
	// ImportName is the field name of the imported refill function, of type
	// (i64) -> i64: it receives the (negative) fuel left and returns the new
	// fuel, or stops the call.
	ImportName = "refill"
	// GlobalName is the export name of the mutable i64 fuel global.
	GlobalName = "tollgate_fuel"
)

// Section ids of the Wasm binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// rank orders the known sections as the spec requires (data count sits
// between element and code). The tag section (exceptions) is refused.
var rank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secGlobal: 6, secExport: 7, secStart: 8, secElement: 9, secDataCount: 10,
	secCode: 11, secData: 12,
}

var (
	magic   = []byte{0x00, 'a', 's', 'm'}
	version = []byte{0x01, 0x00, 0x00, 0x00}
)

type section struct {
	id   byte
	name string // custom sections only
	body []byte
}

// module holds what the rewrite of later sections needs from earlier ones.
type module struct {
	typeParams  [][]byte // parameter types per type index
	funcTypes   []uint32 // type index per function (imports first)
	funcImports uint32
	globals     uint32 // original global count (imported + defined)

	refill     uint32 // function index of the refill import
	fuelGlobal uint32 // global index of the fuel global
	checkPlain []byte // entry check of a function without loops

	// Globals the loop check's refill path parks locals in (see
	// funcRewriter.assemble): slots[t] lists the global indices of type
	// scratchTypes[t], allocated after the fuel global as needed.
	slots       [len(scratchTypes)][]uint32
	globalCount uint32 // entries in the global section, fuel global included
	globalBody  []byte // global section entries, fuel global included
	extraBody   []byte // entries of the slot globals
	extraCount  uint32

	elided int // function entry checks elided (for tests and tuning)
}

// Rewrite returns a copy of a Wasm binary module with fuel metering:
// an exported mutable i64 global (GlobalName) decremented at every loop
// header and function entry, and an imported host function
// (ImportModule.ImportName, type (i64) -> i64) called when it goes negative.
// memory.fill and memory.copy additionally charge len>>6 units.
//
// The function entry check is left out where a loop header is reached by
// straight-line code (only leading blocks) from the entry, since the loop
// header check charges that path. A function with a loop counts in an
// added local, synchronized with the global around calls and at returns,
// and its loop checks park the locals the loop writes in added globals
// while they call the host (see funcRewriter.assemble). The import shifts the index of every
// defined function; Rewrite remaps calls, ref.func, exports, the start
// function, element segments and the name section. It drops DWARF
// (.debug*) and sourceMappingURL custom sections, which would no longer
// match the code.
//
// # Errors
//
// Rewrite never panics on malformed input. It returns an error when the
// module cannot be decoded; uses a feature outside the MVP plus
// sign-extension, non-trapping float-to-int, bulk memory, reference types
// and multi-value (for example SIMD, threads, exceptions, GC, memory64);
// already imports from ImportModule, imports or exports a name GlobalName,
// or refers to a global, function or type index beyond those it declares.
// A module Rewrite accepts may still fail wazero's validation.
func Rewrite(wasm []byte) ([]byte, error) {
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, fmt.Errorf("fuel: %w", err)
	}
	m := &module{}

	// Type, import, global and export sections always get an entry, so
	// process them even when missing: insert empty ones at their place.
	required := []byte{secType, secImport, secGlobal, secExport}
	var out []section
	addMissing := func(before int) error {
		for len(required) > 0 && rank[required[0]] < before {
			id := required[0]
			required = required[1:]
			body, err := m.rewriteSection(id, nil)
			if err != nil {
				return fmt.Errorf("fuel: %s section: %w", sectionName(id), err)
			}
			out = append(out, section{id: id, body: body})
		}
		return nil
	}
	nCode := -1
	for _, s := range secs {
		if s.id == secCustom {
			out = append(out, s)
			continue
		}
		if err := addMissing(rank[s.id]); err != nil {
			return nil, err
		}
		if len(required) > 0 && required[0] == s.id {
			required = required[1:]
		}
		if s.id == secCode {
			nCode = 0
		}
		body, err := m.rewriteSection(s.id, s.body)
		if err != nil {
			return nil, fmt.Errorf("fuel: decode %s section: %w", sectionName(s.id), err)
		}
		out = append(out, section{id: s.id, body: body})
	}
	if err := addMissing(1 << 30); err != nil {
		return nil, err
	}
	if m.extraCount > 0 {
		for i := range out {
			if out[i].id == secGlobal {
				out[i].body = m.finishGlobals()
			}
		}
	}
	if nCode < 0 && len(m.funcTypes) > int(m.funcImports) {
		return nil, errors.New("fuel: function section without code section")
	}

	// Custom sections last: a name section may come before the imports.
	dst := append(append(make([]byte, 0, len(wasm)+len(wasm)/16), magic...), version...)
	for _, s := range out {
		if s.id == secCustom {
			if dropCustom(s.name) {
				continue
			}
			if s.name == "name" {
				body, err := m.rewriteNames(s.body)
				if err != nil {
					return nil, fmt.Errorf("fuel: decode name section: %w", err)
				}
				s.body = body
			} else {
				s.body = append(appendName(nil, s.name), s.body...)
			}
		}
		dst = append(dst, s.id)
		dst = appendU32(dst, uint32(len(s.body)))
		dst = append(dst, s.body...)
	}
	return dst, nil
}

// dropCustom reports custom sections that refer to code offsets, which
// the rewrite changes.
func dropCustom(name string) bool {
	return strings.HasPrefix(name, ".debug") || name == "sourceMappingURL"
}

// splitSections checks the header and section order and returns the
// sections. A custom section's body excludes its name.
func splitSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], magic) {
		return nil, errors.New("not a Wasm binary (bad magic)")
	}
	if !bytes.Equal(wasm[4:8], version) {
		return nil, errors.New("unsupported Wasm binary version")
	}
	r := &reader{b: wasm, off: 8}
	var secs []section
	last, names := 0, 0
	for !r.done() {
		id, _ := r.byte()
		body, err := r.vecBytes()
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		if id == secCustom {
			cr := &reader{b: body}
			name, err := cr.vecBytes()
			if err != nil {
				return nil, fmt.Errorf("custom section name: %w", err)
			}
			if string(name) == "name" {
				if names++; names > 1 {
					return nil, errors.New("duplicate name section")
				}
			}
			secs = append(secs, section{id: id, name: string(name), body: body[cr.off:]})
			continue
		}
		if id == secTag {
			return nil, errors.New("tag section: exception handling is not supported")
		}
		rk, ok := rank[id]
		if !ok {
			return nil, fmt.Errorf("unknown section id %d", id)
		}
		if rk <= last {
			return nil, fmt.Errorf("%s section out of order or duplicated", sectionName(id))
		}
		last = rk
		secs = append(secs, section{id: id, body: body})
	}
	return secs, nil
}

func sectionName(id byte) string {
	switch id {
	case secType:
		return "type"
	case secImport:
		return "import"
	case secFunction:
		return "function"
	case secTable:
		return "table"
	case secMemory:
		return "memory"
	case secGlobal:
		return "global"
	case secExport:
		return "export"
	case secStart:
		return "start"
	case secElement:
		return "element"
	case secCode:
		return "code"
	case secData:
		return "data"
	case secDataCount:
		return "data count"
	}
	return fmt.Sprintf("id %d", id)
}

// rewriteSection returns the new body of a known section. body is nil for
// a required section the module lacks.
func (m *module) rewriteSection(id byte, body []byte) ([]byte, error) {
	r := &reader{b: body}
	var out []byte
	var err error
	switch id {
	case secType:
		out, err = m.types(r)
	case secImport:
		out, err = m.imports(r)
	case secFunction:
		err = m.functions(r)
		out = body
	case secTable:
		err = m.tables(r)
		out = body
	case secMemory:
		err = m.memories(r)
		out = body
	case secGlobal:
		out, err = m.globalSection(r)
	case secExport:
		out, err = m.exports(r)
	case secStart:
		var f uint32
		if f, err = m.funcIndex(r); err == nil {
			out = appendU32(nil, f)
		}
	case secElement:
		out, err = m.elements(r)
	case secCode:
		out, err = m.code(r)
	case secData:
		out, err = m.data(r)
	case secDataCount:
		_, err = r.u32()
		out = body
	}
	if err != nil {
		return nil, err
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// optCount reads a vector length, or 0 for a missing section.
func optCount(r *reader) (uint32, error) {
	if len(r.b) == 0 {
		return 0, nil
	}
	return r.count()
}

func valType(r *reader) (byte, error) {
	t, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x70, 0x6f: // i32 i64 f32 f64 funcref externref
		return t, nil
	case 0x7b:
		return 0, errors.New("v128 (SIMD) is not supported")
	}
	return 0, fmt.Errorf("unsupported value type 0x%02x", t)
}

// valTypes reads a vector of value types and returns them, one byte each.
func valTypes(r *reader) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	start := r.off
	for i := uint32(0); i < n; i++ {
		if _, err := valType(r); err != nil {
			return nil, err
		}
	}
	return r.b[start:r.off], nil
}

func (m *module) types(r *reader) ([]byte, error) {
	n, err := optCount(r)
	if err != nil {
		return nil, err
	}
	start := r.off
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return nil, err
		}
		if form != 0x60 {
			return nil, fmt.Errorf("type %d: unsupported type form 0x%02x (GC proposal)", i, form)
		}
		params, err := valTypes(r)
		if err != nil {
			return nil, fmt.Errorf("type %d: %w", i, err)
		}
		if _, err := valTypes(r); err != nil {
			return nil, fmt.Errorf("type %d: %w", i, err)
		}
		m.typeParams = append(m.typeParams, params)
	}
	out := appendU32(nil, n+1)
	out = append(out, r.b[start:r.off]...)
	return append(out, 0x60, 1, 0x7e, 1, 0x7e), nil // (i64) -> i64
}

func (m *module) typeIndex(r *reader) (uint32, error) {
	t, err := r.u32()
	if err != nil {
		return 0, err
	}
	// The refill type is appended at len(typeParams): refuse it too.
	if uint64(t) >= uint64(len(m.typeParams)) {
		return 0, fmt.Errorf("type index %d out of range", t)
	}
	return t, nil
}

func limits(r *reader, memory bool) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case flags > 1 && memory && flags&2 != 0 && flags < 4:
		return errors.New("shared memory (threads) is not supported")
	case flags > 1 && memory:
		return fmt.Errorf("unsupported memory limits flags 0x%02x (memory64?)", flags)
	case flags > 1:
		return fmt.Errorf("unsupported table limits flags 0x%02x", flags)
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flags == 1 {
		_, err = r.u32()
	}
	return err
}

func tableType(r *reader) error {
	t, err := r.byte()
	if err != nil {
		return err
	}
	if t != 0x70 && t != 0x6f {
		return fmt.Errorf("unsupported table element type 0x%02x", t)
	}
	return limits(r, false)
}

func (m *module) imports(r *reader) ([]byte, error) {
	n, err := optCount(r)
	if err != nil {
		return nil, err
	}
	start := r.off
	for i := uint32(0); i < n; i++ {
		mod, err := r.vecBytes()
		if err != nil {
			return nil, err
		}
		name, err := r.vecBytes()
		if err != nil {
			return nil, err
		}
		if string(mod) == ImportModule {
			return nil, fmt.Errorf("import %d: module already imports from %q", i, ImportModule)
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0:
			t, err := m.typeIndex(r)
			if err != nil {
				return nil, fmt.Errorf("import %d: %w", i, err)
			}
			m.funcTypes = append(m.funcTypes, t)
			m.funcImports++
		case 1:
			err = tableType(r)
		case 2:
			err = limits(r, true)
		case 3:
			if string(name) == GlobalName {
				return nil, fmt.Errorf("import %d: module imports a global named %q", i, GlobalName)
			}
			if _, err = valType(r); err == nil {
				err = mutability(r)
			}
			m.globals++
		default:
			err = fmt.Errorf("unsupported import kind 0x%02x", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("import %d: %w", i, err)
		}
	}
	m.refill = m.funcImports
	out := appendU32(nil, n+1)
	out = append(out, r.b[start:r.off]...)
	out = appendName(out, ImportModule)
	out = appendName(out, ImportName)
	out = append(out, 0)
	return appendU32(out, uint32(len(m.typeParams))), nil
}

func mutability(r *reader) error {
	mut, err := r.byte()
	if err == nil && mut > 1 {
		err = fmt.Errorf("bad global mutability 0x%02x", mut)
	}
	return err
}

func (m *module) functions(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		t, err := m.typeIndex(r)
		if err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
		m.funcTypes = append(m.funcTypes, t)
	}
	return nil
}

func (m *module) tables(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if err := tableType(r); err != nil {
			return fmt.Errorf("table %d: %w", i, err)
		}
	}
	return nil
}

func (m *module) memories(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if err := limits(r, true); err != nil {
			return fmt.Errorf("memory %d: %w", i, err)
		}
	}
	return nil
}

func (m *module) globalSection(r *reader) ([]byte, error) {
	n, err := optCount(r)
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n+1)
	for i := uint32(0); i < n; i++ {
		start := r.off
		if _, err := valType(r); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
		if err := mutability(r); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
		out = append(out, r.b[start:r.off]...)
		// An initializer may only read globals declared before it.
		if out, err = m.constExpr(r, out); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
		m.globals++
	}
	m.fuelGlobal = m.globals
	m.buildChecks()
	out = append(out, 0x7e, 0x01, 0x42, 0x00, 0x0b) // (mut i64) (i64.const 0)
	m.globalCount = n + 1
	m.globalBody = out[len(appendU32(nil, n+1)):]
	return out, nil
}

// finishGlobals returns the global section body with the slot globals
// that the code section allocated.
func (m *module) finishGlobals() []byte {
	out := appendU32(nil, m.globalCount+m.extraCount)
	out = append(out, m.globalBody...)
	return append(out, m.extraBody...)
}

func (m *module) exports(r *reader) ([]byte, error) {
	n, err := optCount(r)
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n+1)
	for i := uint32(0); i < n; i++ {
		name, err := r.vecBytes()
		if err != nil {
			return nil, err
		}
		if string(name) == GlobalName {
			return nil, fmt.Errorf("export %d: module already exports %q", i, GlobalName)
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, uint32(len(name)))
		out = append(append(out, name...), kind)
		var idx uint32
		switch kind {
		case 0:
			idx, err = m.funcIndex(r)
		case 1, 2:
			idx, err = r.u32()
		case 3:
			if idx, err = r.u32(); err == nil && idx >= m.globals {
				err = fmt.Errorf("global index %d out of range", idx)
			}
		default:
			err = fmt.Errorf("unsupported export kind 0x%02x", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("export %d: %w", i, err)
		}
		out = appendU32(out, idx)
	}
	out = appendName(out, GlobalName)
	out = append(out, 3)
	return appendU32(out, m.fuelGlobal), nil
}

// funcIndex reads an original function index and returns its new index.
func (m *module) funcIndex(r *reader) (uint32, error) {
	f, err := r.u32()
	if err != nil {
		return 0, err
	}
	return m.remap(f)
}

func (m *module) remap(f uint32) (uint32, error) {
	if f >= uint32(len(m.funcTypes)) {
		return 0, fmt.Errorf("function index %d out of range", f)
	}
	if f >= m.funcImports {
		f++
	}
	return f, nil
}

// constExpr copies a constant expression, remapping ref.func and refusing
// global indices beyond the original globals.
func (m *module) constExpr(r *reader, out []byte) ([]byte, error) {
	for {
		start := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x0b: // end
			return append(out, op), nil
		case 0x41:
			err = r.skipLEB(5)
		case 0x42:
			err = r.skipLEB(10)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case 0xd0: // ref.null t
			_, err = r.byte()
		case 0x23: // global.get
			var g uint32
			if g, err = r.u32(); err == nil && g >= m.globals {
				err = fmt.Errorf("global index %d out of range", g)
			}
		case 0xd2: // ref.func
			f, err := m.funcIndex(r)
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), f)
			continue
		default:
			return nil, fmt.Errorf("unsupported instruction 0x%02x in constant expression", op)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.off]...)
	}
}

func (m *module) elements(r *reader) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		if out, err = m.element(r, out); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
	}
	return out, nil
}

// element copies one element segment. Flags: bit 0 passive/declarative,
// bit 1 explicit table (active) or declarative, bit 2 expressions instead
// of function indices.
func (m *module) element(r *reader, out []byte) ([]byte, error) {
	flags, err := r.u32()
	if err != nil {
		return nil, err
	}
	if flags > 7 {
		return nil, fmt.Errorf("unsupported element segment flags %d", flags)
	}
	out = appendU32(out, flags)
	active := flags&1 == 0
	start := r.off
	if flags&3 == 2 { // explicit table index
		if _, err := r.u32(); err != nil {
			return nil, err
		}
	}
	out = append(out, r.b[start:r.off]...)
	if active {
		if out, err = m.constExpr(r, out); err != nil {
			return nil, err
		}
	}
	if flags&3 != 0 { // elemkind (0x00) or reftype
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	cnt, err := r.count()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, cnt)
	for j := uint32(0); j < cnt; j++ {
		if flags&4 != 0 {
			out, err = m.constExpr(r, out)
		} else {
			var f uint32
			if f, err = m.funcIndex(r); err == nil {
				out = appendU32(out, f)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *module) data(r *reader) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, flags)
		switch flags {
		case 2:
			var mem uint32
			if mem, err = r.u32(); err != nil {
				return nil, err
			}
			out = appendU32(out, mem)
			fallthrough
		case 0:
			out, err = m.constExpr(r, out)
		case 1:
		default:
			err = fmt.Errorf("unsupported data segment flags %d", flags)
		}
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		start := r.off
		if _, err := r.vecBytes(); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		out = append(out, r.b[start:r.off]...)
	}
	return out, nil
}

// rewriteNames shifts function indices in the name section (function,
// local and label names) and names the refill import. Other subsections
// do not refer to functions and are kept as they are.
func (m *module) rewriteNames(body []byte) ([]byte, error) {
	r := &reader{b: body}
	out := appendName(nil, "name")
	for !r.done() {
		id, _ := r.byte()
		sub, err := r.vecBytes()
		if err != nil {
			return nil, fmt.Errorf("subsection %d: %w", id, err)
		}
		switch id {
		case 1, 2, 3:
			if sub, err = m.shiftNameMap(sub, id != 1); err != nil {
				return nil, fmt.Errorf("subsection %d: %w", id, err)
			}
		case 0, 4, 5, 6, 7, 8, 9, 10, 11:
		default:
			continue // unknown: may refer to functions, drop it
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// shiftNameMap shifts the function indices keying a name map (or, when
// indirect, a map of name maps).
func (m *module) shiftNameMap(b []byte, indirect bool) ([]byte, error) {
	r := &reader{b: b}
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	named := !indirect
	out := appendU32(nil, n+boolU32(named))
	for i := uint32(0); i < n; i++ {
		f, err := r.u32()
		if err != nil {
			return nil, err
		}
		if f >= m.funcImports {
			if named {
				out = appendU32(out, m.refill)
				out = appendName(out, ImportModule+"."+ImportName)
				named = false
			}
			if f == ^uint32(0) {
				return nil, errors.New("function index overflows")
			}
			f++
		}
		out = appendU32(out, f)
		start := r.off
		if indirect {
			k, err := r.count()
			if err != nil {
				return nil, err
			}
			for j := uint32(0); j < k; j++ {
				if _, err := r.u32(); err != nil {
					return nil, err
				}
				if _, err := r.vecBytes(); err != nil {
					return nil, err
				}
			}
		} else if _, err := r.vecBytes(); err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.off]...)
	}
	if named {
		out = appendU32(out, m.refill)
		out = appendName(out, ImportModule+"."+ImportName)
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
