package audit_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
)

// Every column survives the spool encoding, and the chain still verifies
// on what comes back.
func TestRowCodecRoundTrip(t *testing.T) {
	rows := audittest.SessionRows(time.Date(2026, 3, 31, 23, 59, 58, 0, time.UTC), "orders-db", "run-7", 9)
	rows[3].Signature = "ab12"
	var back []audit.Row
	for i := range rows {
		r, err := audit.DecodeRow(audit.AppendRow(nil, &rows[i]))
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if !reflect.DeepEqual(r, rows[i]) {
			t.Fatalf("row %d changed:\n got  %+v\n want %+v", i, r, rows[i])
		}
		back = append(back, r)
	}
	back[3].Signature = ""
	if f := audit.Verify(back); len(f) != 1 || f[0].Status != audit.StatusComplete {
		t.Fatalf("verify after round trip: %+v", f)
	}
}

// A spool written by an earlier gateway holds JSON rows; they still
// replay.
func TestRowCodecReadsJSON(t *testing.T) {
	row := audittest.SessionRows(time.Now().UTC().Truncate(time.Microsecond), "t", "r", 3)[1]
	b, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.DecodeRow(b)
	if err != nil || !got.Time.Equal(row.Time) || got.EventID != row.EventID || !reflect.DeepEqual(got.Request, row.Request) {
		t.Fatalf("DecodeRow(JSON) = %+v, %v", got, err)
	}
}

// Every truncation of a valid record, and a few damaged ones, is an error
// rather than a panic or a wrong row.
func TestRowCodecRejectsDamage(t *testing.T) {
	rows := audittest.SessionRows(time.Now(), "t", "r", 3)
	b := audit.AppendRow(nil, &rows[1])
	for n := 0; n < len(b); n++ {
		if _, err := audit.DecodeRow(b[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(b))
		}
	}
	if _, err := audit.DecodeRow(append(append([]byte(nil), b...), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	huge := []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := audit.DecodeRow(huge); err == nil {
		t.Fatal("a 4 GiB string length accepted")
	}
}

func FuzzDecodeRow(f *testing.F) {
	rows := audittest.SessionRows(time.Now(), "t", "r", 4)
	for i := range rows {
		f.Add(audit.AppendRow(nil, &rows[i]))
	}
	f.Add([]byte(`{"event_id":"x","time":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := audit.DecodeRow(b)
		if err != nil || len(b) == 0 || b[0] == '{' {
			return
		}
		// What decodes re-encodes to a record that decodes the same.
		again, err := audit.DecodeRow(audit.AppendRow(nil, &r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the row: %v\n%+v\n%+v", err, r, again)
		}
	})
}

// NewID gives distinct version 4 UUIDs in the canonical text form.
func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := audit.NewID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '4' || id[18] != '-' || !strings.ContainsRune("89ab", rune(id[19])) || id[23] != '-' {
			t.Fatalf("not a version 4 UUID: %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
}
