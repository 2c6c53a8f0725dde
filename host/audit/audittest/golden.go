package audittest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// updating reports whether golden files are to be rewritten: the test
// package's own -update flag (each package that writes golden files
// declares one; a flag here would clash with theirs).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// collapseRecordings makes a session's recording chunks one row, whose
// events carry no times: how many chunks a recording takes depends on
// the machine's pace (a chunk is also cut by age), its events do not.
// The rows after it are renumbered.
func collapseRecordings(rows []audit.Row) []audit.Row {
	var out []audit.Row
	shift := map[string]uint64{}
	at := map[string]int{} // session → index in out of its recording row
	for _, r := range rows {
		r.Seq -= shift[r.SessionID]
		if r.Kind != audit.KindRecording {
			out = append(out, r)
			continue
		}
		events := eventTimes.ReplaceAllString(r.Request["events"], "${1}T,")
		events = castStamp.ReplaceAllString(events, `"timestamp":T`)
		if i, ok := at[r.SessionID]; ok {
			c := &out[i]
			c.Request = map[string]string{"chunk": "0", "events": c.Request["events"] + events}
			c.RequestBytes += r.RequestBytes
			c.ResponseBytes += r.ResponseBytes
			shift[r.SessionID]++
			continue
		}
		r.Request = map[string]string{"chunk": "0", "events": events}
		at[r.SessionID] = len(out)
		out = append(out, r)
	}
	return out
}

var (
	eventTimes = regexp.MustCompile(`(?m)^(\[)[0-9.]+,`)
	castStamp  = regexp.MustCompile(`"timestamp":[0-9]+`)
)

// volatileClaims change with every token minted.
var volatileClaims = []string{"exp", "iat", "nbf", "jti", "auth_time"}

// Golden compares rows with the golden file at path (a JSON array), after
// putting in the place of what changes from run to run what stays: IDs
// become their order of appearance ("session-1", "approval-1"), times,
// durations, addresses and hashes are cleared, hashes kept as whether
// they were set; an ID quoted inside a value is replaced too, and so is
// each old string of replace (old, new pairs: an address chosen at run
// time, say). `go test -update` rewrites the file (the test package
// declares the flag). A change in what a protocol records then shows as
// a diff in review.
func Golden(t testing.TB, path string, rows []audit.Row, replace ...string) {
	t.Helper()
	ids := map[string]string{}
	stable := func(kind, id string) string {
		if id == "" {
			return ""
		}
		if s, ok := ids[id]; ok {
			return s
		}
		n := 1
		for _, s := range ids {
			if len(s) > len(kind) && s[:len(kind)+1] == kind+"-" {
				n++
			}
		}
		ids[id] = kind + "-" + strconv.Itoa(n)
		return ids[id]
	}
	rows = collapseRecordings(rows)
	out := make([]audit.Row, len(rows))
	for i, r := range rows {
		r.EventID = ""
		r.SessionID = stable("session", r.SessionID)
		r.ApprovalID = stable("approval", r.ApprovalID)
		r.Time = time.Time{}
		r.DurationMicro = 0
		r.RemoteAddr = ""
		if r.PrevHash != "" {
			r.PrevHash = "set"
		}
		if r.RowHash != "" {
			r.RowHash = "set"
		}
		if len(r.Claims) > 0 {
			c := make(map[string]string, len(r.Claims))
			for k, v := range r.Claims {
				c[k] = v
			}
			for _, k := range volatileClaims {
				delete(c, k)
			}
			r.Claims = c
		}
		out[i] = r
	}
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	// The IDs quoted inside values (a reason naming its approval).
	for id, name := range ids {
		got = bytes.ReplaceAll(got, []byte(id), []byte(name))
	}
	for i := 0; i+1 < len(replace); i += 2 {
		got = bytes.ReplaceAll(got, []byte(replace[i]), []byte(replace[i+1]))
	}
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run the test with -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("audit rows differ from %s (run with -update to accept, and review the diff):\n%s", path, got)
	}
}
