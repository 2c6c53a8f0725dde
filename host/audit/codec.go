package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The spool stores each row as one record in a compact binary form:
// encoding it costs a tenth of encoding/json, and the writer goroutine
// that does it shares two cores with the request path.
//
//	payload: version byte 0x01, then the fields in the order of encodeRow
//	string:  uvarint length, bytes
//	int:     varint (zig-zag); uint: uvarint
//	time:    varint Unix nanoseconds, read back in UTC; 0 is the zero
//	         time (rows are never stamped at the epoch)
//	[]string and map[string]string: uvarint count, then the strings
//	         (maps as key, value pairs)
//
// A payload that starts with '{' is a row written as JSON by an earlier
// gateway, so a spool left by it still replays.
const rowCodecVersion = 0x01

// maxCodecItems bounds a decoded slice or map, so that a damaged count
// cannot make the decoder allocate beyond what the payload can hold.
const maxCodecItems = 1 << 20

var errRowCodec = errors.New("audit: spooled row is malformed")

// AppendRow appends r's spool encoding to dst.
func AppendRow(dst []byte, r *Row) []byte {
	dst = append(dst, rowCodecVersion)
	dst = appendString(dst, r.EventID)
	dst = appendTime(dst, r.Time)
	for _, s := range [...]string{r.GatewayID, r.SessionID} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, r.Seq)
	for _, s := range [...]string{r.Protocol, r.Listener, r.Target, r.Kind, r.RemoteAddr, r.Issuer, r.Subject, r.Email} {
		dst = appendString(dst, s)
	}
	dst = appendStrings(dst, r.Groups)
	dst = appendMap(dst, r.Claims)
	dst = appendString(dst, r.AccessRule)
	dst = appendMap(dst, r.Request)
	for _, s := range [...]string{r.Verdict, r.Plugin, r.Reason} {
		dst = appendString(dst, s)
	}
	dst = appendMap(dst, r.Annotations)
	dst = appendString(dst, r.Status)
	for _, n := range [...]int64{r.RequestBytes, r.ResponseBytes, r.DurationMicro} {
		dst = binary.AppendVarint(dst, n)
	}
	for _, s := range [...]string{r.Error, r.ApprovalID, r.Approver, r.PrevHash, r.RowHash, r.Signature} {
		dst = appendString(dst, s)
	}
	return dst
}

// DecodeRow reverses AppendRow (and reads the JSON of earlier gateways).
// It never panics and never allocates more than the payload can hold.
func DecodeRow(b []byte) (Row, error) {
	var r Row
	if len(b) > 0 && b[0] == '{' {
		err := json.Unmarshal(b, &r)
		return r, err
	}
	if len(b) == 0 || b[0] != rowCodecVersion {
		return r, fmt.Errorf("%w: unknown version", errRowCodec)
	}
	d := rowDecoder{b: b[1:]}
	r.EventID = d.string()
	r.Time = d.time()
	r.GatewayID, r.SessionID = d.string(), d.string()
	r.Seq = d.uvarint()
	for _, p := range [...]*string{&r.Protocol, &r.Listener, &r.Target, &r.Kind, &r.RemoteAddr, &r.Issuer, &r.Subject, &r.Email} {
		*p = d.string()
	}
	r.Groups = d.strings()
	r.Claims = d.stringMap()
	r.AccessRule = d.string()
	r.Request = d.stringMap()
	r.Verdict, r.Plugin, r.Reason = d.string(), d.string(), d.string()
	r.Annotations = d.stringMap()
	r.Status = d.string()
	r.RequestBytes, r.ResponseBytes, r.DurationMicro = d.varint(), d.varint(), d.varint()
	for _, p := range [...]*string{&r.Error, &r.ApprovalID, &r.Approver, &r.PrevHash, &r.RowHash, &r.Signature} {
		*p = d.string()
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errRowCodec, len(d.b))
	}
	if d.err != nil {
		return Row{}, d.err
	}
	return r, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

func appendMap(dst []byte, m map[string]string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, v := range m {
		dst = appendString(appendString(dst, k), v)
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

// rowDecoder reads fields in order; the first error sticks and later
// reads return zero values.
type rowDecoder struct {
	b   []byte
	err error
}

func (d *rowDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or damaged %s", errRowCodec, what)
	}
	d.b = nil
}

func (d *rowDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a slice or map length; each item takes at least one byte
// (per string), which bounds it by what is left.
func (d *rowDecoder) count(perItem int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > maxCodecItems || n*uint64(perItem) > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *rowDecoder) strings() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

func (d *rowDecoder) stringMap() map[string]string {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.string()
		m[k] = d.string()
	}
	return m
}

func (d *rowDecoder) time() time.Time {
	ns := d.varint()
	if d.err != nil || ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
