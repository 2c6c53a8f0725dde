package fuel

import (
	"errors"
	"fmt"
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
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opI64Const    = 0x42
	opI64LtS      = 0x53
	opI64Add      = 0x7c
	opI64Sub      = 0x7d
	opI64ShrU     = 0x88
	opI64ExtendU  = 0xad
	opRefFunc     = 0xd2
	opPrefixFC    = 0xfc
)

// buildChecks precomputes the two fuel check sequences:
//
//	global.get F; i64.const 1; i64.sub; global.set F
//	global.get F; i64.const 0; i64.lt_s
//	if; global.get F; call refill; global.set F; end
//
// The loop variant ("loop restart", for loops without params) branches
// back to the loop header after a refill, so the code after the check never
// follows a call in the hot path (wazero then keeps the memory base and
// globals in registers; 1.5x otherwise). The check then runs again, so it
// hands refill F+1: the unit is charged once.
//
//	if; global.get F; i64.const 1; i64.add; call refill; global.set F; br 1; end
func (m *module) buildChecks() {
	g := appendU32(nil, m.fuelGlobal)
	var b []byte
	b = append(append(b, opGlobalGet), g...)
	b = append(b, opI64Const, 1, opI64Sub, opGlobalSet)
	b = append(b, g...)
	m.checkPlain = append(m.appendTest(append([]byte(nil), b...), false), opEnd)
	m.checkLoop = append(m.appendTest(b, true), opBr, 1, opEnd)
}

// appendTest appends "if the fuel is negative, refill it", leaving the if
// block open.
func (m *module) appendTest(b []byte, restart bool) []byte {
	g := appendU32(nil, m.fuelGlobal)
	b = append(append(b, opGlobalGet), g...)
	b = append(b, opI64Const, 0, opI64LtS, opIf, 0x40, opGlobalGet)
	b = append(b, g...)
	if restart {
		b = append(b, opI64Const, 1, opI64Add)
	}
	b = appendU32(append(b, opCall), m.refill)
	return append(append(b, opGlobalSet), g...)
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
	var fr funcRewriter
	fr.m = m
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
	m       *module
	r       reader
	code    []byte // rewritten instructions, reused across functions
	copied  int    // input offset up to which instructions are in code
	scratch uint32 // local index for memory.fill/copy lengths
	needTmp bool
}

// flush copies the input instructions not yet copied, up to off.
func (f *funcRewriter) flush(off int) {
	f.code = append(f.code, f.r.b[f.copied:off]...)
	f.copied = off
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
	locals := uint64(m.typeParams[m.funcTypes[idx]])
	for i := uint32(0); i < decls; i++ {
		k, err := r.u32()
		if err != nil {
			return nil, err
		}
		if _, err := valType(r); err != nil {
			return nil, err
		}
		locals += uint64(k)
	}
	if locals >= 1<<31 {
		return nil, errors.New("too many locals")
	}
	declEnd := r.off
	f.scratch = uint32(locals)
	f.needTmp = false
	f.code = f.code[:0]
	f.copied = declEnd

	entryCheck, err := f.instructions()
	if err != nil {
		return nil, err
	}

	// Assemble: size, local declarations (+ the scratch i32), entry check,
	// instructions.
	var head []byte
	if f.needTmp {
		head = appendU32(head, decls+1)
		head = append(head, body[declsStart:declEnd]...)
		head = append(head, 1, 0x7f)
	} else {
		head = append(head, body[:declEnd]...)
	}
	size := len(head) + len(f.code)
	if entryCheck {
		size += len(m.checkPlain)
	} else {
		m.elided++
	}
	out = appendU32(out, uint32(size))
	out = append(out, head...)
	if entryCheck {
		out = append(out, m.checkPlain...)
	}
	return append(out, f.code...), nil
}

// instructions rewrites the function's instructions into f.code and reports
// whether the function needs an entry check.
func (f *funcRewriter) instructions() (entryCheck bool, err error) {
	m, r := f.m, &f.r
	depth := 0
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
			depth++
			_, err = f.blockType()
		case op == opLoop:
			depth++
			var params uint32
			if params, err = f.blockType(); err != nil {
				break
			}
			f.flush(r.off)
			if params == 0 {
				f.code = append(f.code, m.checkLoop...)
			} else {
				f.code = append(f.code, m.checkPlain...)
			}
		case op == opEnd:
			if depth == 0 {
				if !r.done() {
					return false, fmt.Errorf("trailing bytes after end at offset %d", r.off)
				}
				f.flush(r.off)
				return entryCheck, nil
			}
			depth--
		case op == opCall || op == opReturnCall || op == opRefFunc:
			f.flush(r.off)
			var fn uint32
			if fn, err = m.funcIndex(r); err == nil {
				f.code = appendU32(f.code, fn)
				f.copied = r.off
			}
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
	return f.m.typeParams[t], nil
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
		f.flush(start)
		f.needTmp = true
		m := f.m
		s := appendU32(nil, f.scratch)
		g := appendU32(nil, m.fuelGlobal)
		c := append(append(f.code, opLocalSet), s...)
		c = append(append(c, opGlobalGet), g...)
		c = append(append(c, opLocalGet), s...)
		c = append(c, opI64ExtendU, opI64Const, 6, opI64ShrU, opI64Sub, opGlobalSet)
		c = append(m.appendTest(append(c, g...), false), opEnd, opLocalGet)
		f.code = append(c, s...)
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

// skipImmediates skips the immediates of every other known instruction and
// refuses unknown ones.
func (f *funcRewriter) skipImmediates(op byte) error {
	r := &f.r
	switch {
	case op == opUnreachable || op == 0x01 || op == opElse || op == 0x0f || // nop, return
		op == 0x1a || op == 0x1b || // drop, select
		op >= 0x45 && op <= 0xc4 || // numeric, sign extension
		op == 0xd1: // ref.is_null
		return nil
	case op == opBr || op == 0x0d || // br_if
		op >= opLocalGet && op <= 0x22 || // local.*
		op == 0x25 || op == 0x26 || // table.get/set
		op == 0x3f || op == 0x40: // memory.size/grow
		return r.skipLEB(5)
	case op == 0x0e: // br_table
		n, err := r.count()
		if err != nil {
			return err
		}
		for i := uint32(0); i <= n; i++ {
			if err := r.skipLEB(5); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		if _, err := f.m.typeIndex(r); err != nil {
			return err
		}
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
