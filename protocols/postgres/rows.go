package postgres

import (
	"encoding/binary"
	"strings"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Result rows reach the chain in batches of at most batchRows rows or
// batchBytes bytes of values, and always before the result ends.
const (
	batchRows  = 1000
	batchBytes = 1 << 20
)

// batch collects the rows of one result for a pg.rows event. Its buffers
// are reused from batch to batch: values are copied into one arena, cells
// come from one slice, so a steady stream of rows allocates nothing per
// row. Masked rows are re-encoded from the cells, never patched in place.
type batch struct {
	o      *op
	desc   *rowDesc
	cols   []event.Column
	arena  []byte
	cells  []event.Cell
	values [][]event.Cell
	size   int
	rows   event.Rows
	// ev and fields are the pg.rows event, reused from batch to batch:
	// plugins never keep an event past Process.
	ev     event.Event
	fields map[string]string
}

func (b *batch) reset() {
	b.o, b.desc = nil, nil
	b.arena = b.arena[:0]
	b.cells = b.cells[:0]
	clear(b.values)
	b.values = b.values[:0]
	b.size = 0
	if cap(b.arena) > 4*batchBytes {
		b.arena = nil
	}
}

// descOf is the column description that applies to o's rows.
func descOf(o *op) *rowDesc {
	if o.kind == opExecute && o.portal != nil && o.desc == nil {
		return o.portal.desc
	}
	return o.desc
}

// addRowLocked adds a DataRow (or a COPY line) to the batch, flushing
// the batch first when it is full or belongs to another result.
func (s *session) addRowLocked(o *op, body []byte) {
	b := &s.batch
	if b.o != nil && b.o != o {
		s.flushBatchLocked(b.o)
	}
	if b.o == nil {
		b.o = o
		d := descOf(o)
		b.desc = d
		if d != nil {
			b.cols = d.cols
		} else {
			b.cols = nil
		}
	}
	start := len(b.cells)
	if d := b.desc; d != nil && d.copy {
		var ok bool
		if b.arena, b.cells, ok = splitCopyLine(body, d.fmt, b.arena, b.cells); !ok || len(b.cells)-start != len(b.cols) {
			s.withholdLocked(o, "a COPY line the gateway cannot split into columns for masking")
			return
		}
	} else {
		if err := s.drow.Decode(body); err != nil {
			// A malformed row from the server: nothing after it can be
			// trusted to be framed right.
			s.withholdLocked(o, "the target sent a malformed row")
			s.up.Close()
			return
		}
		if len(s.drow.Values) != len(b.cols) {
			// No usable description (the client never asked for one and
			// none came): unnamed columns, treated as binary so that a
			// match is nulled rather than half-masked.
			b.cols = make([]event.Column, len(s.drow.Values))
			for i := range b.cols {
				b.cols[i] = event.Column{Binary: true}
			}
		}
		for _, v := range s.drow.Values {
			if v == nil {
				b.cells = append(b.cells, event.Cell{Null: true})
				continue
			}
			b.cells = append(b.cells, b.cell(v))
		}
	}
	b.values = append(b.values, b.cells[start:len(b.cells):len(b.cells)])
	b.size += len(body)
	if len(b.values) >= batchRows || b.size >= batchBytes {
		s.flushBatchLocked(o)
	}
}

// cell copies v into the arena.
func (b *batch) cell(v []byte) event.Cell {
	off := len(b.arena)
	b.arena = append(b.arena, v...)
	return event.Cell{Data: b.arena[off:len(b.arena):len(b.arena)]}
}

// flushBatchLocked runs the batch through the chain and writes the rows
// as the plugins left them. The chain runs without mu (callPluginsLocked).
func (s *session) flushBatchLocked(o *op) {
	b := &s.batch
	if b.o == nil || len(b.values) == 0 {
		b.reset()
		return
	}
	o = b.o
	if d := b.desc; d != nil && d.sens != nil {
		if masked := maskSensitive(d, b.values, o.maskComputed); masked != "" && o.st != nil && !o.st.maskedNoted {
			o.st.maskedNoted = true
			o.st.annot = append(o.st.annot, event.Annotation{Key: "mask.sensitive", Value: masked})
		}
	}
	if !o.chainRows {
		s.writeRowsLocked(b)
		b.reset()
		return
	}
	b.rows = event.Rows{Columns: b.cols, Values: b.values}
	if b.fields == nil {
		b.fields = make(map[string]string, 1)
	}
	clear(b.fields)
	b.fields["sql"] = o.sql
	b.ev = event.Event{Phase: event.Response, Protocol: "postgres", Kind: "pg.rows", SessionID: s.id,
		Target: s.targetName, Principal: s.principal, Fields: b.fields, Rows: &b.rows}
	v := s.callPluginsLocked(o.st, &b.ev)
	if v.Action == event.Deny || v.Action == event.Hold {
		s.withholdLocked(o, "result withheld by policy: "+v.Reason)
		return
	}
	if o.st != nil && len(v.Annotations) > 0 {
		o.st.annot = append(o.st.annot, v.Annotations...)
	}
	s.writeRowsLocked(b)
	b.reset()
}

// writeRowsLocked encodes the batch's rows, as masked, for the client.
func (s *session) writeRowsLocked(b *batch) {
	for _, row := range b.values {
		if d := b.desc; d != nil && d.copy {
			at := len(s.wbuf)
			s.wbuf = append(s.wbuf, 'd', 0, 0, 0, 0)
			s.wbuf = appendCopyLine(s.wbuf, d.fmt, row)
			binary.BigEndian.PutUint32(s.wbuf[at+1:], uint32(len(s.wbuf)-at-1))
			continue
		}
		n := 2
		for _, c := range row {
			n += 4 + len(c.Data)
		}
		s.wbuf = append(s.wbuf, 'D', 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(s.wbuf[len(s.wbuf)-6:], uint32(4+n))
		binary.BigEndian.PutUint16(s.wbuf[len(s.wbuf)-2:], uint16(len(row)))
		for _, c := range row {
			if c.Null {
				s.wbuf = append(s.wbuf, 0xff, 0xff, 0xff, 0xff)
				continue
			}
			s.wbuf = binary.BigEndian.AppendUint32(s.wbuf, uint32(len(c.Data)))
			s.wbuf = append(s.wbuf, c.Data...)
		}
	}
}

// maskedText replaces a sensitive value of a text type in text format;
// any other value becomes NULL, which every client can decode.
var maskedText = []byte("[masked]")[:8:8] // full: a plugin appending copies

// maskSensitive masks, in place, the cells of the columns that come from
// a sensitive column, and with computed every column the server named no
// source for. It returns the sensitive columns it masked, comma-separated.
func maskSensitive(d *rowDesc, rows [][]event.Cell, computed bool) string {
	var names []string
	for i := range d.sens {
		if i >= len(d.cols) || (d.sens[i] == nil && !(computed && d.computed[i])) {
			continue
		}
		// A text value's binary format is its text: "[masked]" decodes.
		textual := textType(d.types[i])
		for _, row := range rows {
			if i >= len(row) || row[i].Null {
				continue
			}
			if textual || d.copy {
				row[i].Data = maskedText
			} else {
				row[i] = event.Cell{Null: true}
			}
		}
		if d.sens[i] != nil {
			names = append(names, d.sens[i].String())
		} else {
			names = append(names, d.cols[i].Name+" (computed)")
		}
	}
	return strings.Join(names, ",")
}

// textType reports whether a value of type oid may be any text.
func textType(oid uint32) bool {
	switch oid {
	case 25, 1043, 1042, 19, 705: // text, varchar, bpchar, name, unknown
		return true
	}
	return false
}
