package audit

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"
)

func session(id string, n int) []Row {
	var c SessionChain
	var rows []Row
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC)
	for i := 1; i <= n; i++ {
		kind := "http.request"
		switch i {
		case 1:
			kind = KindSessionOpen
		case n:
			kind = KindSessionClose
		}
		r := Row{EventID: fmt.Sprintf("%s-%d", id, i), Time: t0.Add(time.Duration(i) * time.Millisecond), SessionID: id,
			Seq: uint64(i), Kind: kind, Subject: "agent", Request: map[string]string{"path": fmt.Sprintf("/p/%d", i)}}
		c.Seal(&r)
		rows = append(rows, r)
	}
	return rows
}

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func([]Row) []Row
		want   string
	}{
		{"complete", func(r []Row) []Row { return r }, StatusComplete},
		{"replayed rows are not tampering", func(r []Row) []Row { return append(r, r[1], r[2]) }, StatusComplete},
		{"stored out of order", func(r []Row) []Row { r[1], r[3] = r[3], r[1]; return r }, StatusComplete},
		{"deleted row", func(r []Row) []Row { return append(r[:2], r[3:]...) }, StatusGap},
		{"edited request", func(r []Row) []Row { r[2].Request = map[string]string{"path": "/innocent"}; return r }, StatusEdited},
		{"edited and rehashed", func(r []Row) []Row {
			r[2].Request = map[string]string{"path": "/innocent"}
			r[2].RowHash = Hash(&r[2])
			return r
		}, StatusReordered},
		{"reordered seqs", func(r []Row) []Row {
			r[1].Seq, r[2].Seq = r[2].Seq, r[1].Seq
			return r
		}, StatusEdited},
		{"never closed", func(r []Row) []Row { return r[:3] }, StatusOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Verify(tc.mutate(session("s1", 5)))
			if len(f) != 1 || f[0].Status != tc.want {
				t.Fatalf("Verify = %+v, want %s", f, tc.want)
			}
		})
	}
}

func TestHashCoversEveryColumn(t *testing.T) {
	base := session("s", 2)[0]
	h := Hash(&base)
	for name, edit := range map[string]func(*Row){
		"time":    func(r *Row) { r.Time = r.Time.Add(time.Microsecond) },
		"claims":  func(r *Row) { r.Claims = map[string]string{"run_id": "2"} },
		"verdict": func(r *Row) { r.Verdict = "allow" },
		"groups":  func(r *Row) { r.Groups = []string{"x"} },
		"bytes":   func(r *Row) { r.ResponseBytes++ },
		"prev":    func(r *Row) { r.PrevHash = "00" },
	} {
		r := base
		edit(&r)
		if Hash(&r) == h {
			t.Errorf("editing %s leaves the hash unchanged", name)
		}
	}
	r := base
	r.RowHash = "anything"
	if Hash(&r) != h {
		t.Error("the row's own hash must not take part")
	}
}

func TestSignatures(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	var rec memRec
	signed := Signing(&rec, priv)
	for _, r := range session("s1", 4) {
		signed.Record(r)
	}
	if f := VerifyWith(rec.rows, VerifyOptions{PublicKey: pub}); f[0].Status != StatusComplete {
		t.Fatalf("signed session: %+v", f)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if f := VerifyWith(rec.rows, VerifyOptions{PublicKey: other}); f[0].Status != StatusBadSig {
		t.Fatalf("wrong key: %+v", f)
	}
	forged := append([]Row(nil), rec.rows...)
	forged[3].Signature = strings.Repeat("00", 64)
	if f := VerifyWith(forged, VerifyOptions{PublicKey: pub}); f[0].Status != StatusBadSig {
		t.Fatalf("forged signature: %+v", f)
	}
	if f := VerifyWith(session("s2", 3), VerifyOptions{PublicKey: pub}); f[0].Status != StatusUnsigned {
		t.Fatalf("unsigned with a key required: %+v", f)
	}
}

type memRec struct{ rows []Row }

func (m *memRec) Record(r Row) error { m.rows = append(m.rows, r); return nil }
func (m *memRec) Close() error       { return nil }
