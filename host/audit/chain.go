package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sync"
)

// SessionChain links the rows of one session: each row carries the hash
// of the one before it and its own hash over a canonical encoding, so an
// edited, deleted or reordered row is detectable afterwards. The zero
// value starts a session. It is not safe for concurrent use: the session
// that owns it seals rows in sequence order.
type SessionChain struct{ prev string }

// Seal sets r.PrevHash and r.RowHash.
func (c *SessionChain) Seal(r *Row) {
	r.PrevHash = c.prev
	r.RowHash = Hash(r)
	c.prev = r.RowHash
}

// Hash is the hex SHA-256 of r's canonical encoding, with RowHash left
// out. Every column takes part, in a fixed order, each length-prefixed,
// maps sorted by key: two rows hash alike only if every column is equal.
// The encoding is built in one pooled buffer and hashed in one call (a
// write per column to the hash cost more than the hashing). It takes a
// pointer: a row is large, and hashing must not copy it.
func Hash(r *Row) string {
	bp := hashBufs.Get().(*[]byte)
	b := appendCanonical((*bp)[:0], r)
	sum := sha256.Sum256(b)
	if cap(b) <= 64<<10 {
		*bp = b
		hashBufs.Put(bp)
	}
	// Encoded on the stack: one allocation, the string.
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendCanonical appends the encoding Hash covers. Changing it changes
// every row's hash: TestHashIsStable pins it.
func appendCanonical(b []byte, r *Row) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	kv := func(m map[string]string) {
		var arr [16]string
		keys := arr[:0]
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		num(int64(len(keys)))
		for _, k := range keys {
			str(k)
			str(m[k])
		}
	}
	str("tollgate.audit.v1")
	str(r.EventID)
	num(r.Time.UnixMicro())
	str(r.GatewayID)
	str(r.SessionID)
	num(int64(r.Seq))
	str(r.Protocol)
	str(r.Listener)
	str(r.Target)
	str(r.Kind)
	str(r.RemoteAddr)
	str(r.Issuer)
	str(r.Subject)
	str(r.Email)
	num(int64(len(r.Groups)))
	for _, g := range r.Groups {
		str(g)
	}
	kv(r.Claims)
	str(r.AccessRule)
	kv(r.Request)
	str(r.Verdict)
	str(r.Plugin)
	str(r.Reason)
	kv(r.Annotations)
	str(r.Status)
	num(r.RequestBytes)
	num(r.ResponseBytes)
	num(r.DurationMicro)
	str(r.Error)
	str(r.ApprovalID)
	str(r.Approver)
	str(r.PrevHash)
	return b
}
