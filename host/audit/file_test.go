package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestFileRecorderKeepsEveryRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	r, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := r.Record(Row{SessionID: "s", Seq: uint64(w*each + i), Kind: "http.request"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(Row{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row Row
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line is not a row: %s", sc.Bytes())
		}
		seen[row.Seq] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct rows on disk, want %d", len(seen), writers*each)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestFileRecorderAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for range 2 {
		r, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r.Record(Row{Kind: "x"})
		r.Close()
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Count(string(b), "\n"); lines != 2 {
		t.Fatalf("a restart must append, not truncate: %d lines", lines)
	}
}

// Every JSON path (the file store, the admin API's rows) gives back the
// bytes that were hashed, also when they are not UTF-8.
func TestRowJSONKeepsBytesThatAreNotUTF8(t *testing.T) {
	rows := session("s1", 3)
	rows[1].Request = map[string]string{"query": "SELECT '\xff\xfe'", "\xc3": "key"}
	rows[1].Groups = []string{"g\x80"}
	var c SessionChain
	for i := range rows {
		c.Seal(&rows[i])
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	var back []Row
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if Hash(&back[i]) != rows[i].RowHash {
			t.Errorf("row %d changed in JSON: %q", i, back[i].Request)
		}
	}
	if f := Verify(back); f[0].Status != StatusComplete {
		t.Fatalf("verify: %+v", f)
	}
	if strings.Count(string(b), `"raw_row"`) != 1 {
		t.Errorf("raw_row on rows that are UTF-8: %s", b)
	}
}
