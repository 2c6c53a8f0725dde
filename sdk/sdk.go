//go:build wasip1

// Package sdk is the Go SDK for Tollgate plugins. A plugin is a plain Go
// program built with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o myplugin.wasm .
//
// It registers its handlers in init (or main's package-level vars) and the
// SDK exports the ABI v1 entry points for it:
//
//	func init() {
//		sdk.Subscribe("http.request")
//		sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
//			if ev.Field("method") == "DELETE" {
//				return sdk.Deny("deletes are not allowed")
//			}
//			return sdk.Allow()
//		})
//	}
//	func main() {}
//
// The SDK hides the ABI (sdk/ABI.md): fields are read from the host only
// when asked for, so a plugin that looks at one field never pays for the
// others.
package sdk

import (
	"encoding/json"
	"time"
	"unsafe"
)

// ABI v1 imports. See sdk/ABI.md for the contract.

//go:wasmimport tollgate config
func hostConfig(buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate subscribe
func hostSubscribe(kind unsafe.Pointer, kindLen uint32)

//go:wasmimport tollgate event_get
func hostEventGet(name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate event_set
func hostEventSet(name unsafe.Pointer, nameLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport tollgate set_reason
func hostSetReason(p unsafe.Pointer, n uint32)

//go:wasmimport tollgate add_approver
func hostAddApprover(p unsafe.Pointer, n uint32)

//go:wasmimport tollgate annotate
func hostAnnotate(k unsafe.Pointer, kn uint32, v unsafe.Pointer, vn uint32)

//go:wasmimport tollgate cacheable
func hostCacheable()

//go:wasmimport tollgate subscribe_rows
func hostSubscribeRows(glob unsafe.Pointer, n uint32, pattern int32)

//go:wasmimport tollgate pattern
func hostPattern(spec unsafe.Pointer, n uint32) int32

//go:wasmimport tollgate find
func hostFind(id int32, name unsafe.Pointer, n uint32) int32

//go:wasmimport tollgate mask
func hostMask(id int32, name unsafe.Pointer, n uint32, strategy uint32) int32

//go:wasmimport tollgate mask_stream
func hostMaskStream(id int32, name unsafe.Pointer, n uint32, strategy uint32) int32

//go:wasmimport tollgate sql_classify
func hostSQLClassify(name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate rows_count
func hostRowsCount() int32

//go:wasmimport tollgate rows_column
func hostRowsColumn(i uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate rows_get
func hostRowsGet(row, col uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate rows_set
func hostRowsSet(row, col uint32, val unsafe.Pointer, n uint32, null uint32)

//go:wasmimport tollgate rows_mask
func hostRowsMask(id int32, col int32, strategy uint32) int32

//go:wasmimport tollgate log
func hostLog(level uint32, p unsafe.Pointer, n uint32)

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// buf is reused between reads; 4 KiB covers most fields in one host call.
var buf = make([]byte, 4096)

// pull reads a value with the ABI's two-step protocol: if the value is
// larger than the buffer, the host returns its length and copies nothing.
func pull(get func(p unsafe.Pointer, cap uint32) int32) (string, bool) {
	n := get(ptr(buf), uint32(len(buf)))
	if n < 0 {
		return "", false
	}
	if int(n) > len(buf) {
		buf = make([]byte, int(n))
		n = get(ptr(buf), uint32(len(buf)))
	}
	return string(buf[:n]), true
}

// Config decodes the plugin's own table from gateway.toml into v. Called
// in init with a pointer to a struct, it also declares the struct's keys
// (their json names; a field tagged `tollgate:"required"` must be set) as
// the plugin's config schema: `gateway check` and the gateway's start
// then refuse a key the struct lacks, or a value of another type, at its
// place in gateway.toml. A map or an any declares nothing.
func Config(v any) error {
	declareConfig(v)
	s, _ := pull(hostConfig)
	if s == "" {
		s = "{}"
	}
	return json.Unmarshal([]byte(s), v)
}

// Subscribe asks for events of a kind ("http.request", "pg.query", "pg.rows",
// or "*"). Call it in init: the host records subscriptions when it loads the
// plugin and never calls it for other kinds.
func Subscribe(kind string) { hostSubscribe(sptr(kind), uint32(len(kind))) }

// SubscribeRowsWithColumn narrows the row batches the plugin receives to
// those with a column whose name matches glob (case-insensitive, *
// wildcards). Call it in init; several calls add alternatives.
func SubscribeRowsWithColumn(glob string) { hostSubscribeRows(sptr(glob), uint32(len(glob)), -1) }

// SubscribeRowsMatching narrows the row batches the plugin receives to
// those in which p finds something, scanned by the host before any call.
func SubscribeRowsMatching(p Pattern) { hostSubscribeRows(nil, 0, int32(p)) }

// Log writes to the gateway's log, tagged with the plugin and session.
func Log(msg string) { hostLog(1, sptr(msg), uint32(len(msg))) }

// Event is the event being decided. Its accessors call the host.
type Event struct{}

// Get reads any event attribute by its ABI name: "kind", "phase",
// "protocol", "target", "session_id", "principal.subject",
// "principal.email", "principal.issuer", "principal.groups" (one per line),
// "claim.<name>", "field.<name>".
func (Event) Get(name string) (string, bool) {
	return pull(func(p unsafe.Pointer, c uint32) int32 {
		return hostEventGet(sptr(name), uint32(len(name)), p, c)
	})
}

func (e Event) get(name string) string { v, _ := e.Get(name); return v }

// Kind is the event kind, e.g. "pg.query".
func (e Event) Kind() string { return e.get("kind") }

// Target is the target's name from gateway.toml.
func (e Event) Target() string { return e.get("target") }

// Subject is the principal's subject.
func (e Event) Subject() string { return e.get("principal.subject") }

// Claim is one claim of the principal's token ("ref", "repository"...).
func (e Event) Claim(name string) string { return e.get("claim." + name) }

// Time is the current time from the host, in UTC. Use it, not time.Now:
// the sandbox's clock is not the real one. A verdict that read it is
// never cached.
func (e Event) Time() time.Time {
	t, _ := time.Parse(time.RFC3339, e.get("time"))
	return t
}

// Field is a payload field: "sql", "method", "path", "command"...
func (e Event) Field(name string) string { return e.get("field." + name) }

// SetField changes a payload field; the verdict becomes a rewrite.
func (Event) SetField(name, value string) bool {
	n := "field." + name
	return hostEventSet(sptr(n), uint32(len(n)), sptr(value), uint32(len(value))) == 0
}

// Statement is one SQL statement as the host's classifier sees it.
type Statement struct {
	Class    string // read, write, ddl, dcl, admin, transaction, session, lock, lift_read_only, unknown
	Command  string // e.g. "SELECT", "DELETE", "CREATE TABLE"
	HasWhere bool   // an UPDATE or DELETE has a top-level WHERE; each UPDATE or DELETE action of a MERGE has its own AND condition
}

// Statements classifies the SQL in a field (usually "sql"), in the host.
// Comments, quoting, dollar quotes, several statements and data-modifying
// CTEs are seen through; what cannot be classified is "unknown".
func (Event) Statements(field string) []Statement {
	n := "field." + field
	s, ok := pull(func(p unsafe.Pointer, c uint32) int32 {
		return hostSQLClassify(sptr(n), uint32(len(n)), p, c)
	})
	if !ok {
		return nil
	}
	var out []Statement
	for len(s) > 0 {
		line := s
		if i := indexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		c1 := indexByte(line, ' ')
		if c1 < 0 || len(line) < c1+3 {
			continue
		}
		out = append(out, Statement{Class: line[:c1], HasWhere: line[c1+1] == '1', Command: line[c1+3:]})
	}
	return out
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// Annotate adds a key/value to the event's audit row.
func Annotate(key, value string) {
	hostAnnotate(sptr(key), uint32(len(key)), sptr(value), uint32(len(value)))
}

// Cacheable tells the host that this verdict depends only on the fields
// this call read: the host may reuse it for an event with the same values
// of those fields, without calling the plugin.
func Cacheable() { hostCacheable() }

// Pattern is a matcher compiled by the host, once, at load: a built-in
// detector name ("email", "credit_card", "aws_access_key", ...), several
// joined by commas ("email,jwt"), "re:<RE2 expression>" (a match longer
// than 256 bytes is ignored), or "whole", which matches every non-empty
// value entirely, however long: use it to mask a column by name.
type Pattern int32

// Compile compiles spec in the host. Call it in init.
func Compile(spec string) (Pattern, bool) {
	id := hostPattern(sptr(spec), uint32(len(spec)))
	return Pattern(id), id >= 0
}

// Count returns how many matches the pattern finds in a field.
func (p Pattern) Count(field string) int {
	n := "field." + field
	return int(hostFind(int32(p), sptr(n), uint32(len(n))))
}

// Strategy says how a mask replaces what it covers.
type Strategy uint32

const (
	Redact  Strategy = 0 // the whole match replaced
	Partial Strategy = 1 // all but the last 4 characters replaced
	Hash    Strategy = 2 // a keyed hash, equal values stay equal

	// RecordOnly, or-ed into a strategy of Mask (Redact|RecordOnly),
	// masks the field in the audit row and for the plugins after this
	// one, while the target receives it as sent: for a secret the
	// upstream needs (a token in a query string) that the audit trail
	// must not keep. Mask only; MaskStream and row masking refuse it.
	RecordOnly Strategy = 0x100
)

// Mask replaces the pattern's matches in a field, in the host, and returns
// how many it replaced. The verdict becomes a rewrite when any was.
func (p Pattern) Mask(field string, s Strategy) int {
	n := "field." + field
	return int(hostMask(int32(p), sptr(n), uint32(len(n)), uint32(s)))
}

// MaskStream masks a field that carries one chunk of a stream (SSH output,
// logs). The host keeps the tail of each chunk until it knows no secret
// continues into the next one, so the field may come back shorter; an
// event whose field "eos" is "1" ends the stream and flushes it. It
// returns how many matches it replaced.
func (p Pattern) MaskStream(field string, s Strategy) int {
	n := "field." + field
	return int(hostMaskStream(int32(p), sptr(n), uint32(len(n)), uint32(s)))
}

// Rows is the result-row batch of a "*.rows" event.
type Rows struct{}

// Len is the number of rows in the batch.
func (Rows) Len() int { return int(hostRowsCount()) }

// Columns are the batch's column names.
func (Rows) Columns() []string {
	var cols []string
	for i := uint32(0); ; i++ {
		s, ok := pull(func(p unsafe.Pointer, c uint32) int32 { return hostRowsColumn(i, p, c) })
		if !ok {
			return cols
		}
		cols = append(cols, s)
	}
}

// Get returns a value; ok is false for NULL.
func (Rows) Get(row, col int) (string, bool) {
	return pull(func(p unsafe.Pointer, c uint32) int32 { return hostRowsGet(uint32(row), uint32(col), p, c) })
}

// Set replaces a value.
func (Rows) Set(row, col int, v string) {
	hostRowsSet(uint32(row), uint32(col), sptr(v), uint32(len(v)), 0)
}

// SetNull replaces a value with NULL.
func (Rows) SetNull(row, col int) { hostRowsSet(uint32(row), uint32(col), nil, 0, 1) }

// MaskColumn masks the pattern's matches in one column of every row (col
// -1: every column), in the host. It returns how many values changed.
func (Rows) MaskColumn(p Pattern, col int, s Strategy) int {
	return int(hostRowsMask(int32(p), int32(col), uint32(s)))
}
