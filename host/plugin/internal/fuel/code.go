package fuel

import (
	"errors"
	"fmt"
	"sort"
)

// Opcodes the rewriter emits or inspects.
const (
	opUnreachable = 0x00
	opBlock       = 0x02
	opLoop        = 0x03
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0b
	opBr          = 0x0c
	opCall        = 0x10
	opReturnCall  = 0x12
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opLocalTee    = 0x22
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opI64Const    = 0x42
	opI64GeS      = 0x59
	opI64Add      = 0x7c
	opI64Sub      = 0x7d
	opI64ShrU     = 0x88
	opI64ExtendU  = 0xad
	opRefFunc     = 0xd2
	opPrefixFC    = 0xfc
)

// buildChecks precomputes the plain fuel check, used at the entry of
// functions without loops (those with loops count in a local, see
// funcRewriter.assemble):
//
//	global.get F; i64.const 1; i64.sub; global.set F
//	global.get F; i64.const 0; i64.lt_s
//	if; global.get F; call refill; global.set F; end
func (m *module) buildChecks() {
	g := appendU32(nil, m.fuelGlobal)
	var b []byte
	b = append(append(b, opGlobalGet), g...)
	b = append(b, opI64Const, 1, opI64Sub, opGlobalSet)
	b = append(b, g...)
	m.checkPlain = m.appendTest(b)
}

// appendTest appends "if the fuel global is negative, refill it".
func (m *module) appendTest(b []byte) []byte {
	g := appendU32(nil, m.fuelGlobal)
	b = append(append(b, opGlobalGet), g...)
	b = append(b, opI64Const, 0, opI64GeS, opIf, 0x40, opElse, opGlobalGet)
	b = append(b, g...)
	b = appendU32(append(b, opCall), m.refill)
	b = append(append(b, opGlobalSet), g...)
	return append(b, opEnd)
}

// scratchTypes are the value types of locals a loop check parks in globals
// across the refill call.
var scratchTypes = [...]byte{0x7f, 0x7e, 0x7d, 0x7c} // i32 i64 f32 f64

// maxParked bounds the locals one loop check parks, and so its size.
const maxParked = 64

// slot returns the index of the k-th global of type scratchTypes[t],
// declaring it if needed.
func (m *module) slot(t, k int) uint32 {
	for len(m.slots[t]) <= k {
		m.slots[t] = append(m.slots[t], m.fuelGlobal+1+m.extraCount)
		m.extraCount++
		m.extraBody = append(m.extraBody, scratchTypes[t], 1) // mutable
		switch scratchTypes[t] {
		case 0x7f:
			m.extraBody = append(m.extraBody, 0x41, 0)
		case 0x7e:
			m.extraBody = append(m.extraBody, opI64Const, 0)
		case 0x7d:
			m.extraBody = append(m.extraBody, 0x43, 0, 0, 0, 0)
		case 0x7c:
			m.extraBody = append(m.extraBody, 0x44, 0, 0, 0, 0, 0, 0, 0, 0)
		}
		m.extraBody = append(m.extraBody, opEnd)
	}
	return m.slots[t][k]
}

func (m *module) code(r *reader) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	if int(n) != len(m.funcTypes)-int(m.funcImports) {
		return nil, fmt.Errorf("%d bodies for %d functions", n, len(m.funcTypes)-int(m.funcImports))
	}
	out := appendU32(make([]byte, 0, len(r.b)+len(r.b)/8), n)
	fr := funcRewriter{m: m, seen: map[uint32]int{}}
	for i := uint32(0); i < n; i++ {
		body, err := r.vecBytes()
		if err != nil {
			return nil, err
		}
		idx := m.funcImports + i
		if out, err = fr.rewrite(body, idx, out); err != nil {
			return nil, fmt.Errorf("function %d: %w", idx, err)
		}
	}
	return out, nil
}

type funcRewriter struct {
	m      *module
	r      reader
	code   []byte // copied and remapped instructions, reused across functions
	copied int    // input offset up to which instructions are in code

	needTmp bool       // memory.fill/copy need the scratch i32 local
	params  []byte     // parameter types
	decls   []declRun  // declared locals
	ctl     []bool     // open blocks: true for a loop
	loops   int        // open loops
	hasLoop bool       // the function has a loop: it counts in a local
	groups  [][]uint32 // locals written per outermost loop
	serial  int        // group count, across functions
	seen    map[uint32]int
	patches []patch     // code to insert into code
	parked  [][2]uint32 // (local, global) pairs of one loop check
	buf     []byte
}

// declRun is a run of declared locals of one type, up to local index end.
type declRun struct {
	end uint64
	t   byte
}

// patch is fuel code to insert at offset at of funcRewriter.code.
type patch struct {
	at   int
	kind patchKind
	arg  int // the group of a loop check
}

type patchKind uint8

const (
	patchLoop  patchKind = iota // check at a loop header, with restart
	patchPlain                  // check at a loop header with params
	patchFill                   // charge of memory.fill/copy, length on the stack
	patchOut                    // before a call or exit: store the fuel local
	patchIn                     // after a call: reload the fuel local
)

// localType returns the type of local l, or 0 if there is no such local.
func (f *funcRewriter) localType(l uint32) byte {
	if uint64(l) < uint64(len(f.params)) {
		return f.params[l]
	}
	i := sort.Search(len(f.decls), func(i int) bool { return f.decls[i].end > uint64(l) })
	if i == len(f.decls) {
		return 0
	}
	return f.decls[i].t
}

// flush copies the input instructions not yet copied, up to off.
func (f *funcRewriter) flush(off int) {
	f.code = append(f.code, f.r.b[f.copied:off]...)
	f.copied = off
}

// mark records a patch at input offset off.
func (f *funcRewriter) mark(off int, kind patchKind, arg int) {
	f.flush(off)
	f.patches = append(f.patches, patch{len(f.code), kind, arg})
}

// rewrite appends the rewritten body of function idx to out.
func (f *funcRewriter) rewrite(body []byte, idx uint32, out []byte) ([]byte, error) {
	m := f.m
	f.r = reader{b: body}
	r := &f.r
	decls, err := r.count()
	if err != nil {
		return nil, err
	}
	declsStart := r.off
	f.params = m.typeParams[m.funcTypes[idx]]
	locals := uint64(len(f.params))
	f.decls = f.decls[:0]
	for i := uint32(0); i < decls; i++ {
		k, err := r.u32()
		if err != nil {
			return nil, err
		}
		t, err := valType(r)
		if err != nil {
			return nil, err
		}
		locals += uint64(k)
		f.decls = append(f.decls, declRun{locals, t})
	}
	if locals >= 1<<31 {
		return nil, errors.New("too many locals")
	}
	declEnd := r.off
	f.needTmp, f.hasLoop = false, false
	f.code = f.code[:0]
	f.copied = declEnd
	f.ctl = f.ctl[:0]
	f.loops = 0
	f.groups = f.groups[:0]
	f.patches = f.patches[:0]

	entryCheck, err := f.instructions()
	if err != nil {
		return nil, err
	}

	// Local declarations: + the scratch i32 (local index "locals"), + the
	// fuel i64 (next).
	var head []byte
	if extra := boolU32(f.needTmp) + boolU32(f.hasLoop); extra > 0 {
		head = appendU32(head, decls+extra)
		head = append(head, body[declsStart:declEnd]...)
		if f.needTmp {
			head = append(head, 1, 0x7f)
		}
		if f.hasLoop {
			head = append(head, 1, 0x7e)
		}
	} else {
		head = append(head, body[:declEnd]...)
	}
	if !entryCheck {
		m.elided++
	}
	tmp := uint32(locals)
	code := f.assemble(entryCheck, tmp, tmp+boolU32(f.needTmp))
	out = appendU32(out, uint32(len(head)+len(code)))
	out = append(out, head...)
	return append(out, code...), nil
}

// assemble returns the function's instructions with the fuel code: the
// entry check (if entryCheck) and the patches, with local tmp for lengths
// and local fl for the fuel.
//
// A function with a loop counts its fuel in local fl, which it loads from
// the global F at entry and after each call, and stores back before each
// call and exit: in a loop without calls the count then stays in a
// register, instead of a load, store and store-to-load forwarding per
// iteration. Its checks:
//
//	entry:  global.get F; i64.const 1; i64.sub; local.tee fl
//	        i64.const 0; i64.lt_s; if; local.get fl; call refill; local.set fl; end
//	        (or global.get F; local.set fl when the entry check is elided)
//	loop:   local.get fl; i64.const 1; i64.sub; local.tee fl; i64.const 0; i64.lt_s
//	        if
//	          local.get L1; global.set S1 ...
//	          local.get fl; i64.const 1; i64.add; call refill; local.set fl
//	          global.get S1; local.set L1 ...
//	          br 1
//	        end
//
// The loop check branches back to the loop header after a refill ("loop
// restart", for loops without params), so the code after the check never
// follows a call in the hot path (wazero then keeps the memory base and
// globals in registers; 1.5x otherwise). The check then runs again, so it
// hands refill fl+1: the unit is charged once.
//
// L1... are the locals (of numeric type, up to maxParked) written inside
// the outermost loop around the check. Parking them in globals S1...
// across the refill call keeps their loop-carried values out of the call's
// live range: wazero's register allocator stores a value that lives across
// a call to the stack at each of its definitions, which for a loop
// variable means at every iteration, refill taken or not. A global read
// after a call is a fresh load, so only the refill path pays.
//
// A trap leaves F where the last call or exit stored it; the host then
// discards what is left of the slice anyway (see Meter.Call).
func (f *funcRewriter) assemble(entryCheck bool, tmp, fl uint32) []byte {
	m := f.m
	b := f.buf[:0]
	if !f.hasLoop {
		if entryCheck {
			b = append(b, m.checkPlain...)
		}
		prev := 0
		for _, p := range f.patches {
			b = append(b, f.code[prev:p.at]...)
			prev = p.at
			if p.kind == patchFill {
				b = f.appendFillGlobal(b, tmp)
			}
		}
		b = append(b, f.code[prev:]...)
		f.buf = b
		return b
	}
	b = appendU32(append(b, opGlobalGet), m.fuelGlobal)
	if entryCheck {
		b = appendU32(append(b, opI64Const, 1, opI64Sub, opLocalTee), fl)
		b = f.appendTest(b, fl)
	} else {
		b = appendU32(append(b, opLocalSet), fl)
	}
	prev := 0
	for _, p := range f.patches {
		b = append(b, f.code[prev:p.at]...)
		prev = p.at
		switch p.kind {
		case patchLoop:
			b = f.appendLoopCheck(b, fl, f.groups[p.arg])
		case patchPlain:
			b = appendU32(append(b, opLocalGet), fl)
			b = appendU32(append(b, opI64Const, 1, opI64Sub, opLocalTee), fl)
			b = f.appendTest(b, fl)
		case patchFill:
			b = appendU32(append(b, opLocalSet), tmp)
			b = appendU32(append(b, opLocalGet), fl)
			b = appendU32(append(b, opLocalGet), tmp)
			b = appendU32(append(b, opI64ExtendU, opI64Const, 6, opI64ShrU, opI64Sub, opLocalTee), fl)
			b = f.appendTest(b, fl)
			b = appendU32(append(b, opLocalGet), tmp)
		case patchOut:
			b = appendU32(append(b, opLocalGet), fl)
			b = appendU32(append(b, opGlobalSet), m.fuelGlobal)
		case patchIn:
			b = appendU32(append(b, opGlobalGet), m.fuelGlobal)
			b = appendU32(append(b, opLocalSet), fl)
		}
	}
	b = append(b, f.code[prev:]...)
	f.buf = b
	return b
}

// appendTest appends "if local fl is negative, refill it", with fl's new
// value on the stack.
func (f *funcRewriter) appendTest(b []byte, fl uint32) []byte {
	b = append(b, opI64Const, 0, opI64GeS, opIf, 0x40, opElse)
	b = appendU32(append(b, opLocalGet), fl)
	b = appendU32(append(b, opCall), f.m.refill)
	b = appendU32(append(b, opLocalSet), fl)
	return append(b, opEnd)
}

// appendFillGlobal appends the charge of memory.fill/copy in a function
// without a fuel local.
func (f *funcRewriter) appendFillGlobal(b []byte, tmp uint32) []byte {
	m := f.m
	b = appendU32(append(b, opLocalSet), tmp)
	b = appendU32(append(b, opGlobalGet), m.fuelGlobal)
	b = appendU32(append(b, opLocalGet), tmp)
	b = appendU32(append(b, opI64ExtendU, opI64Const, 6, opI64ShrU, opI64Sub, opGlobalSet), m.fuelGlobal)
	b = m.appendTest(b)
	return appendU32(append(b, opLocalGet), tmp)
}

// appendLoopCheck appends the check of a loop header (see assemble).
func (f *funcRewriter) appendLoopCheck(b []byte, fl uint32, written []uint32) []byte {
	m := f.m
	b = appendU32(append(b, opLocalGet), fl)
	b = appendU32(append(b, opI64Const, 1, opI64Sub, opLocalTee), fl)
	b = append(b, opI64Const, 0, opI64GeS, opIf, 0x40, opElse)
	var k [len(scratchTypes)]int
	f.parked = f.parked[:0]
	for _, l := range written {
		if len(f.parked) == maxParked {
			break
		}
		t := f.localType(l)
		for i, st := range scratchTypes {
			if t == st {
				g := m.slot(i, k[i])
				k[i]++
				f.parked = append(f.parked, [2]uint32{l, g})
				b = appendU32(append(b, opLocalGet), l)
				b = appendU32(append(b, opGlobalSet), g)
			}
		}
	}
	b = appendU32(append(b, opLocalGet), fl)
	b = append(b, opI64Const, 1, opI64Add)
	b = appendU32(append(b, opCall), m.refill)
	b = appendU32(append(b, opLocalSet), fl)
	for _, p := range f.parked {
		b = appendU32(append(b, opGlobalGet), p[1])
		b = appendU32(append(b, opLocalSet), p[0])
	}
	return append(b, opBr, 1, opEnd)
}

// instructions copies the function's instructions into f.code, remapping
// function indices, records the patches and reports whether the function
// needs an entry check.
func (f *funcRewriter) instructions() (entryCheck bool, err error) {
	m, r := f.m, &f.r
	prologue := true // only blocks and straight-line code so far
	for {
		start := r.off
		op, err := r.byte()
		if err != nil {
			return false, err
		}
		if prologue && op != opBlock && !straight(op) {
			prologue = false
			entryCheck = op != opLoop
		}
		switch {
		case op == opBlock || op == opIf:
			f.ctl = append(f.ctl, false)
			_, err = f.blockType()
		case op == opLoop:
			f.ctl = append(f.ctl, true)
			if f.loops == 0 { // a new outermost loop
				f.groups = append(f.groups, nil)
				f.serial++
			}
			f.loops++
			f.hasLoop = true
			var params uint32
			if params, err = f.blockType(); err != nil {
				break
			}
			if params == 0 {
				f.mark(r.off, patchLoop, len(f.groups)-1)
			} else {
				f.mark(r.off, patchPlain, 0)
			}
		case op == opEnd:
			if len(f.ctl) == 0 {
				if !r.done() {
					return false, fmt.Errorf("trailing bytes after end at offset %d", r.off)
				}
				f.mark(start, patchOut, 0)
				f.flush(r.off)
				return entryCheck, nil
			}
			if f.ctl[len(f.ctl)-1] {
				f.loops--
			}
			f.ctl = f.ctl[:len(f.ctl)-1]
		case op == opLocalSet || op == opLocalTee:
			var l uint32
			if l, err = r.u32(); err == nil && f.loops > 0 && f.seen[l] != f.serial {
				f.seen[l] = f.serial
				g := &f.groups[len(f.groups)-1]
				*g = append(*g, l)
			}
		case op == opCall || op == opReturnCall:
			f.mark(start, patchOut, 0)
			f.flush(r.off)
			var fn uint32
			if fn, err = m.funcIndex(r); err == nil {
				f.code = appendU32(f.code, fn)
				f.copied = r.off
				if op == opCall {
					f.mark(r.off, patchIn, 0)
				}
			}
		case op == opRefFunc:
			f.flush(r.off)
			var fn uint32
			if fn, err = m.funcIndex(r); err == nil {
				f.code = appendU32(f.code, fn)
				f.copied = r.off
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			f.mark(start, patchOut, 0)
			if _, err = m.typeIndex(r); err == nil {
				err = r.skipLEB(5)
			}
			if err == nil && op == 0x11 {
				f.mark(r.off, patchIn, 0)
			}
		case op == 0x0f: // return
			f.mark(start, patchOut, 0)
		case op == opBr || op == 0x0d: // br, br_if
			var l uint32
			if l, err = r.u32(); err == nil && uint64(l) == uint64(len(f.ctl)) {
				f.mark(start, patchOut, 0)
			}
		case op == 0x0e: // br_table
			err = f.brTable(start)
		case op == opGlobalGet || op == opGlobalSet:
			var g uint32
			if g, err = r.u32(); err == nil && g >= m.globals {
				err = fmt.Errorf("global index %d out of range", g)
			}
		case op == opPrefixFC:
			err = f.prefixFC(start)
		default:
			err = f.skipImmediates(op)
		}
		if err != nil {
			return false, fmt.Errorf("offset %d: %w", start, err)
		}
	}
}

// brTable reads the labels of a br_table and stores the fuel before it if
// one of them returns from the function.
func (f *funcRewriter) brTable(start int) error {
	r := &f.r
	n, err := r.count()
	if err != nil {
		return err
	}
	exits := false
	for i := uint32(0); i <= n; i++ {
		l, err := r.u32()
		if err != nil {
			return err
		}
		exits = exits || uint64(l) == uint64(len(f.ctl))
	}
	if exits {
		f.mark(start, patchOut, 0)
	}
	return nil
}

// blockType reads a block type and returns its parameter count.
func (f *funcRewriter) blockType() (uint32, error) {
	r := &f.r
	if r.off < len(r.b) {
		switch c := r.b[r.off]; c {
		case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x70, 0x6f:
			r.off++
			return 0, nil
		}
	}
	t, err := r.s33()
	if err != nil {
		return 0, err
	}
	if t < 0 || t >= int64(len(f.m.typeParams)) {
		return 0, fmt.Errorf("unsupported block type %d", t)
	}
	return uint32(len(f.m.typeParams[t])), nil
}

// prefixFC handles the 0xFC instructions: saturating truncation (0-7) and
// bulk memory / table (8-17). memory.copy and memory.fill are charged
// len>>6 units first, with the length kept in a scratch local.
func (f *funcRewriter) prefixFC(start int) error {
	r := &f.r
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7:
		return nil
	case sub == 10 || sub == 11: // memory.copy, memory.fill
		f.mark(start, patchFill, 0)
		f.needTmp = true
		if err := r.skipLEB(5); err != nil {
			return err
		}
		if sub == 10 {
			return r.skipLEB(5)
		}
		return nil
	case sub == 8 || sub == 12 || sub == 14: // memory.init, table.init, table.copy
		if err := r.skipLEB(5); err != nil {
			return err
		}
		return r.skipLEB(5)
	case sub <= 17: // data.drop, elem.drop, table.grow/size/fill
		return r.skipLEB(5)
	}
	return fmt.Errorf("unknown opcode 0xfc %d", sub)
}

// skipImmediates skips the immediates of every instruction instructions
// does not handle itself and refuses unknown ones.
func (f *funcRewriter) skipImmediates(op byte) error {
	r := &f.r
	switch {
	case op == opUnreachable || op == 0x01 || op == opElse || // nop
		op == 0x1a || op == 0x1b || // drop, select
		op >= 0x45 && op <= 0xc4 || // numeric, sign extension
		op == 0xd1: // ref.is_null
		return nil
	case op == opLocalGet || // local.set and local.tee are read by instructions
		op == 0x25 || op == 0x26 || // table.get/set
		op == 0x3f || op == 0x40: // memory.size/grow
		return r.skipLEB(5)
	case op == 0x1c: // select t*
		_, err := valTypes(r)
		return err
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		align, err := r.u32()
		if err != nil {
			return err
		}
		if align >= 64 {
			return errors.New("multi-memory is not supported")
		}
		return r.skipLEB(5)
	case op == 0x41:
		return r.skipLEB(5)
	case op == opI64Const:
		return r.skipLEB(10)
	case op == 0x43:
		_, err := r.bytes(4)
		return err
	case op == 0x44:
		_, err := r.bytes(8)
		return err
	case op == 0xd0: // ref.null
		_, err := r.byte()
		return err
	}
	return fmt.Errorf("unknown opcode 0x%02x", op)
}

// straight reports instructions that neither branch nor call: code made of
// them runs once per function entry, so a loop header right after it
// charges the entry (Go functions start with "global.get 0; local.set 1;
// block; loop").
func straight(op byte) bool {
	return op == 0x01 || op == 0x1a || op == 0x1b || // nop, drop, select
		op >= opLocalGet && op <= opGlobalSet ||
		op >= 0x28 && op <= 0x3e || // loads, stores
		op >= 0x41 && op <= 0xc4 // constants, numeric
}
