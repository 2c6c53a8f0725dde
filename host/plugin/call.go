package plugin

import (
	"sort"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/internal/detect"
	"github.com/tollgate-dev/tollgate/internal/sqlclass"
)

// call is the state of one handler invocation, reached by host functions
// through the context.
type call struct {
	p           *Plugin
	ev          *event.Event
	v           event.Verdict
	read        []string // attribute names the guest read, for the verdict cache
	cacheable   bool
	readTime    bool // the guest read "time"
	recorded    bool // a record-only change was made
	rowsChanged int
	// fired counts, per field or column masked, the spans of each
	// detector kind: the audit row says what was masked where, never
	// the value.
	fired map[string]map[string]int
}

func (c *call) tally(where string, spans []detect.Span) {
	for _, s := range spans {
		c.count(where, s.Kind)
	}
}

func (c *call) tallyKinds(where string, kinds []string) {
	for _, k := range kinds {
		c.count(where, k)
	}
}

func (c *call) count(where, kind string) {
	if c.fired == nil {
		c.fired = map[string]map[string]int{}
	}
	m := c.fired[where]
	if m == nil {
		m = map[string]int{}
		c.fired[where] = m
	}
	m[kind]++
}

// firedAnnotations are "detect.<field or column>" = "kind=n,kind=n",
// sorted, one per place something was masked.
func (c *call) firedAnnotations() []event.Annotation {
	wheres := make([]string, 0, len(c.fired))
	for w := range c.fired {
		wheres = append(wheres, w)
	}
	sort.Strings(wheres)
	out := make([]event.Annotation, 0, len(wheres))
	for _, w := range wheres {
		kinds := make([]string, 0, len(c.fired[w]))
		for k, n := range c.fired[w] {
			kinds = append(kinds, k+"="+itoa(n))
		}
		sort.Strings(kinds)
		out = append(out, event.Annotation{Key: "detect." + w, Value: strings.Join(kinds, ",")})
	}
	return out
}

// get resolves an ABI attribute name against the event.
func (c *call) get(name string) (string, bool) {
	if name == "time" {
		// Never a cache key: a verdict that read the clock is not reused.
		c.readTime = true
		return c.p.now().UTC().Format(time.RFC3339), true
	}
	c.read = append(c.read, name)
	return attribute(c.ev, name)
}

func attribute(ev *event.Event, name string) (string, bool) {
	switch name {
	case "kind":
		return ev.Kind, true
	case "phase":
		return ev.Phase.String(), true
	case "protocol":
		return ev.Protocol, true
	case "target":
		return ev.Target, true
	case "session_id":
		return ev.SessionID, true
	}
	if rest, ok := strings.CutPrefix(name, "field."); ok {
		v, ok := ev.Fields[rest]
		return v, ok
	}
	p := ev.Principal
	if p == nil {
		return "", false
	}
	switch name {
	case "principal.subject":
		return p.Subject, true
	case "principal.email":
		return p.Email, p.Email != ""
	case "principal.issuer":
		return p.Issuer, true
	case "principal.groups":
		return strings.Join(p.Groups, "\n"), true
	}
	if rest, ok := strings.CutPrefix(name, "claim."); ok {
		v, ok := p.Claims[rest]
		return v, ok
	}
	return "", false
}

// set changes a payload field; later plugins in the chain see the change.
func (c *call) set(field, value string) {
	if c.ev.Fields == nil {
		c.ev.Fields = map[string]string{}
	}
	c.ev.Fields[field] = value
	if c.v.Changes == nil {
		c.v.Changes = map[string]string{}
	}
	c.v.Changes[field] = value
}

func (c *call) pattern(id int32) *detect.Set {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if id < 0 || int(id) >= len(c.p.patterns) {
		return nil
	}
	return c.p.patterns[id]
}

func (c *call) find(id int32, name string) int32 {
	m := c.pattern(id)
	v, ok := c.get(name)
	if m == nil || !ok {
		return absent
	}
	return int32(len(m.Find([]byte(v), nil)))
}

func (c *call) mask(id int32, name string, strategy uint32) int32 {
	record := strategy&recordOnly != 0
	strategy &^= recordOnly
	m := c.pattern(id)
	field, isField := strings.CutPrefix(name, "field.")
	v, ok := c.ev.Fields[field]
	if m == nil || !isField || !ok {
		return absent
	}
	spans := m.Find([]byte(v), nil)
	if record {
		// What is only recorded may be recorded decoded: a secret sent
		// percent-encoded (ghp%5F..., even twice) or JSON-escaped
		// (ghp\u005f...) is found in its decoded form, which the row
		// then keeps, masked.
		if dec := recordDecoded(v); dec != v {
			if ds := m.Find([]byte(dec), nil); len(ds) > len(spans) {
				v, spans = dec, ds
			}
		}
	}
	if len(spans) == 0 {
		return 0
	}
	masked, err := maskSpans([]byte(v), spans, strategy, c.p.maskKey)
	if err != nil {
		return absent
	}
	if record {
		// The row and later plugins see the masked value; the wire keeps
		// what the client sent, or an earlier plugin's change of it.
		c.ev.Fields[field] = string(masked)
		c.recorded = true
	} else {
		c.set(field, string(masked))
	}
	c.tally(field, spans)
	return int32(len(spans))
}

// maskStream masks one chunk of a stream. The stream's state lives in the
// plugin, keyed by session, the event's field "stream" (which names one
// stream among several of a session: an SSH channel's stdout and stderr,
// two exec channels at once) and the masked field, until a chunk with
// field eos = "1".
func (c *call) maskStream(id int32, name string, strategy uint32) int32 {
	m := c.pattern(id)
	field, isField := strings.CutPrefix(name, "field.")
	v, ok := c.ev.Fields[field]
	st, err := strategyOf(strategy)
	if m == nil || !isField || !ok || err != nil {
		return absent
	}
	key := c.ev.SessionID + "\x00" + c.ev.Fields["stream"] + "\x00" + field
	c.p.mu.Lock()
	s, ok := c.p.streams[key]
	if !ok {
		s = detect.NewStream(m, st, c.p.maskKey)
		c.p.streams[key] = s
	}
	end := c.ev.Fields["eos"] == "1"
	if end {
		delete(c.p.streams, key)
	}
	c.p.mu.Unlock()
	// Write's result is reused by Flush: copy it first.
	out := append([]byte(nil), s.Write([]byte(v))...)
	if end {
		out = append(out, s.Flush()...)
	}
	// What the stream masked in this call's output, not what the chunk
	// alone would show: a secret cut between chunks counts where it is
	// masked, and the chunk is not scanned a second time.
	kinds := s.TakeMasked()
	n := len(kinds)
	c.tallyKinds(field, kinds)
	if string(out) != v {
		c.set(field, string(out))
	}
	return int32(n)
}

func (c *call) cell(row, col uint32) (*event.Cell, bool) {
	if c == nil || c.ev.Rows == nil || int(row) >= len(c.ev.Rows.Values) {
		return nil, false
	}
	r := c.ev.Rows.Values[row]
	if int(col) >= len(r) {
		return nil, false
	}
	return &r[col], true
}

// maskRows masks matches in one column (or all, col < 0) of every row. A
// binary-format value cannot be masked in place, so a match in one
// becomes NULL and the audit row says so.
func (c *call) maskRows(id, col int32, strategy uint32) int32 {
	m := c.pattern(id)
	rs := c.ev.Rows
	if m == nil || rs == nil || int(col) >= len(rs.Columns) {
		return absent
	}
	changed, nulled := int32(0), 0
	for r := range rs.Values {
		for ci := range rs.Values[r] {
			if col >= 0 && int32(ci) != col {
				continue
			}
			cell := &rs.Values[r][ci]
			if cell.Null || ci >= len(rs.Columns) {
				continue
			}
			spans := m.Find(cell.Data, nil)
			if len(spans) == 0 {
				continue
			}
			c.tally("column."+rs.Columns[ci].Name, spans)
			if rs.Columns[ci].Binary {
				*cell = event.Cell{Null: true}
				nulled++
			} else {
				masked, err := maskSpans(cell.Data, spans, strategy, c.p.maskKey)
				if err != nil {
					return absent
				}
				cell.Data = masked
			}
			changed++
		}
	}
	c.rowsChanged += int(changed)
	if nulled > 0 {
		c.v.Annotations = append(c.v.Annotations, event.Annotation{Key: "masked_binary_as_null", Value: itoa(nulled)})
	}
	return changed
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// verdict turns the handler's return code and what it set into a Verdict.
func (c *call) verdict(code int32) event.Verdict {
	v := c.v
	switch code {
	case codeAllow:
		v.Action = event.Allow
		if len(v.Changes) > 0 || c.rowsChanged > 0 {
			v.Action = event.Rewrite
		}
	case codeDeny:
		v.Action = event.Deny
		if v.Reason == "" {
			v.Reason = "denied by plugin " + c.p.name
		}
	case codeHold:
		v.Action = event.Hold
		if v.Reason == "" {
			v.Reason = "held by plugin " + c.p.name
		}
	default:
		v.Action = event.Deny
		v.Reason = "plugin " + c.p.name + " returned an unknown action"
	}
	if len(c.fired) > 0 {
		v.Annotations = append(v.Annotations, c.firedAnnotations()...)
	}
	if v.Action == event.Allow && len(v.Annotations) == 0 {
		v.Plugin = "" // an allow without anything to say is nobody's decision
	}
	return v
}

// classify describes the SQL statements in v, one per line, as
// "<class> <has_where 0|1> <COMMAND>" (sdk/ABI.md). Classification runs in
// the host: a byte-level lexer inside a Go guest is about ten times slower.
// Results are cached per plugin by statement text, since ORMs repeat
// themselves.
func (p *Plugin) classify(sql string) string {
	p.mu.Lock()
	if d, ok := p.sqlCache[sql]; ok {
		p.mu.Unlock()
		return d
	}
	p.mu.Unlock()
	var b strings.Builder
	for _, st := range sqlclass.Classify(sql) {
		b.WriteString(st.Class.String())
		if st.HasWhere {
			b.WriteString(" 1 ")
		} else {
			b.WriteString(" 0 ")
		}
		b.WriteString(st.Command)
		b.WriteByte('\n')
	}
	d := b.String()
	p.mu.Lock()
	if len(p.sqlCache) >= maxCachedVerdicts {
		clear(p.sqlCache)
	}
	p.sqlCache[sql] = d
	p.mu.Unlock()
	return d
}

// percentDecoded decodes %XX escapes, up to three layers deep; a % not
// followed by two hex digits stays. '+' stays too: in a path it is a
// plus, and a secret may hold one.
func percentDecoded(s string) string {
	for range 3 {
		if !strings.Contains(s, "%") {
			return s
		}
		b := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
				i += 2
				continue
			}
			b = append(b, s[i])
		}
		if string(b) == s {
			return s
		}
		s = string(b)
	}
	return s
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
