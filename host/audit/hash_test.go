package audit

import (
	"testing"
	"time"
)

// goldenRow sets every column.
func goldenRow() Row {
	return Row{EventID: "e1", Time: time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC), GatewayID: "gw", SessionID: "s1", Seq: 7,
		Protocol: "postgres", Listener: "pg", Target: "orders", Kind: "pg.query", RemoteAddr: "10.0.0.1:5",
		Issuer: "gh", Subject: "repo:acme/app", Email: "a@b", Groups: []string{"ci", "dev"},
		Claims: map[string]string{"run_id": "42", "repository": "acme/app"}, AccessRule: "r",
		Request: map[string]string{"sql": "SELECT 1", "param.1": "x"}, Verdict: "allow", Plugin: "guard", Reason: "ok",
		Annotations: map[string]string{"b": "2", "a": "1"}, Status: "SELECT 1", RequestBytes: 8, ResponseBytes: -3,
		DurationMicro: 1500, Error: "", ApprovalID: "ap", Approver: "dba", PrevHash: "abc"}
}

// The canonical encoding never changes silently: a trail written by an
// earlier gateway must still verify.
func TestHashIsStable(t *testing.T) {
	for _, c := range []struct {
		r    Row
		want string
	}{
		{goldenRow(), "d39eac34ba214ffc04ef788aeb77d4dbf9791d320b66ba2e0b739bb8ccc91d08"},
		{Row{}, "f80b1a198c3b8c2fcf303b8a22a7eeb23adb744780725c6302e8e142c658ae04"},
	} {
		if got := Hash(&c.r); got != c.want {
			t.Errorf("Hash(%+v) = %s, want %s", c.r, got, c.want)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	r := goldenRow()
	b.ReportAllocs()
	for b.Loop() {
		Hash(&r)
	}
}
