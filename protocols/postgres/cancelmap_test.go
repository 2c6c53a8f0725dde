package postgres

import (
	"encoding/binary"
	"testing"
)

// Two targets' servers may hand out the same backend PID: each client's
// key reaches its own session only, and a removed session is gone.
func TestCancelMapSamePID(t *testing.T) {
	var m cancelMap
	a, b := &cancelTarget{pid: 77, sessionID: "a"}, &cancelTarget{pid: 77, sessionID: "b"}
	pa, ka := m.add(a)
	pb, kb := m.add(b)
	if pa != 77 || pb != 77 || ka == kb {
		t.Fatalf("add: %d/%d %d/%d", pa, ka, pb, kb)
	}
	key := func(k uint32) []byte { return binary.BigEndian.AppendUint32(nil, k) }
	if m.get(77, key(ka)) != a || m.get(77, key(kb)) != b {
		t.Fatal("a key does not reach its own session")
	}
	if m.get(78, key(ka)) != nil || m.get(77, key(ka^1)) != nil || m.get(77, append(key(ka), 0)) != nil {
		t.Fatal("a wrong PID or key reaches a session")
	}
	m.remove(77, ka)
	if m.get(77, key(ka)) != nil || m.get(77, key(kb)) != b {
		t.Fatal("remove")
	}
}
