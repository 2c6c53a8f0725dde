package postgres_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maskCase is one line of testdata/mask_corpus.txt.
type maskCase struct {
	line              int
	refuse, mask, sql string
}

func readMaskCorpus(t *testing.T) []maskCase {
	t.Helper()
	f, err := os.Open("testdata/mask_corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []maskCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, sql, ok := strings.Cut(line, "\t")
		want := strings.Fields(head)
		if !ok || len(want) != 2 {
			t.Fatalf("mask_corpus.txt:%d: want two outcomes, a tab and a statement", n)
		}
		out = append(out, maskCase{line: n, refuse: want[0], mask: want[1], sql: sql})
	}
	if len(out) < 100 {
		t.Fatalf("the corpus has %d statements; it should have at least 100", len(out))
	}
	return out
}

// outcome runs one simple Query and classifies what came back; raw is
// every byte the gateway sent for it.
func (c *rawClient) outcome(t *testing.T, sql string) (outcome string, raw []byte, detail string) {
	t.Helper()
	c.got.Reset()
	c.fe.Send(&pgproto3.Query{String: sql})
	if err := c.fe.Flush(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var errResp *pgproto3.ErrorResponse
	rows, maskedCells := 0, 0
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("%s: the gateway closed the session: %v", sql, err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			cp := *m
			errResp = &cp
		case *pgproto3.DataRow:
			rows++
			for _, v := range m.Values {
				if v == nil || string(v) == "[masked]" {
					maskedCells++
				}
			}
		case *pgproto3.CopyData:
			rows++
			if bytes.Contains(m.Data, []byte("[masked]")) {
				maskedCells++
			}
		case *pgproto3.ReadyForQuery:
			raw = append([]byte(nil), c.got.Bytes()...)
			switch {
			case errResp != nil && errResp.Code == "42501":
				return "refused", raw, errResp.Message
			case errResp != nil:
				return "error", raw, errResp.Code + " " + errResp.Message
			case rows > 0 && maskedCells > 0:
				return "masked", raw, ""
			case rows > 0:
				return "clear", raw, fmt.Sprintf("%d rows", rows)
			}
			// No rows (PREPARE, an UPDATE): nothing to tell masked
			// from clear by.
			return "ran", raw, ""
		}
	}
}

// The masking corpus through the gateway against PostgreSQL 15, once with
// the sensitive column declared derived = "refuse" and once "mask": each
// statement has the outcome the corpus says, and no byte of a secret ever
// reaches the client.
func TestMaskCorpus(t *testing.T) {
	cases := readMaskCorpus(t)
	for _, derived := range []string{"refuse", "mask"} {
		t.Run(derived, func(t *testing.T) {
			e := startEnv(t, envOptions{target: sensitiveTarget(derived)})
			e.pg.Exec(t, apiKeysSQL+";"+notesSQL)
			c := e.login(t)
			defer c.conn.Close()
			for _, tc := range cases {
				want := tc.refuse
				if derived == "mask" {
					want = tc.mask
				}
				got, raw, detail := c.outcome(t, tc.sql)
				if bytes.Contains(raw, []byte("sk_live_")) {
					t.Errorf("mask_corpus.txt:%d: %s: a secret reached the client: %q", tc.line, tc.sql, raw)
				}
				if got == "ran" && (want == "masked" || want == "clear") {
					continue
				}
				if got != want {
					t.Errorf("mask_corpus.txt:%d: %s: want %s, got %s (%s)", tc.line, tc.sql, want, got, detail)
				}
			}
		})
	}
}
