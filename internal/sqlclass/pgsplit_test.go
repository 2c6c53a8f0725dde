//go:build cgo

package sqlclass

// FuzzSplit holds the splitter to PostgreSQL's own lexer and parser
// (libpg_query through cgo, test-only: sqlclass itself stays pure Go for
// wasip1). The parser is PostgreSQL 17's; the test server is 15. Their
// lexers differ, as far as splitting goes, only in \v, which 16 made
// whitespace. libpg_query itself differs from the server in one place:
// it returns -- comments as tokens and so never continues a string
// constant across one ('a' -- c<newline>'b'), where the server does; the
// comparison uses our lexer in that mode (noCommentJoin), and the unit
// tests pin the server's behaviour.

import (
	"strings"
	"testing"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// fragments are what generated inputs are made of: every way to open or
// close a quote, comment or dollar quote, and statement pieces.
var fragments = []string{
	"'", "E'", "e'", "U&'", "u&\"", "\"", "B'", "X'", "N'", "\\", "\\\\", "''", `""`,
	"$$", "$a$", "$b$", "$1", "a$", "--", "/*", "*/", "\n", "\r", " ", "\t", "\v", "\f",
	";", "(", ")", "SELECT ", "DELETE FROM t", "1", "x", " UESCAPE '!'", "!", "BEGIN ATOMIC ",
	" END", "CREATE FUNCTION f() RETURNS int LANGUAGE sql ", ".", "-", "*", "/", "é", "0x", "1e",
	"&", "CASE WHEN 1 THEN 2 END", "AS ", "\u00a0",
}

func generate(data []byte) string {
	var b strings.Builder
	for _, c := range data {
		b.WriteString(fragments[int(c)%len(fragments)])
	}
	return b.String()
}

// semicolons returns the offsets of the ';' tokens our lexer sees with
// standard_conforming_strings on (the server's default), and false if it
// stops at an unterminated quote or comment.
func semicolons(s string, noCommentJoin bool) ([]int, bool) {
	l := lexer{s: s, noCommentJoin: noCommentJoin}
	var out []int
	for {
		tok, r := l.next()
		switch r {
		case lexBad:
			return out, false
		case lexEOF:
			return out, true
		}
		if tok.kind == tkSemi {
			out = append(out, int(tok.start))
		}
	}
}

func checkSplit(t *testing.T, s string) {
	if len(s) > 4096 || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return // the server refuses invalid UTF-8 before lexing; C strings end at NUL
	}
	ours := Classify(s)
	unknown := false
	for _, st := range ours {
		if st.Class == Unknown {
			unknown = true
		}
	}
	scan, err := pg_query.Scan(s)
	if err != nil {
		// The server's lexer rejects the string, and with it the whole
		// query: nothing in it runs, whatever we make of it.
		return
	}
	var theirs []int
	atomic := false
	for i, tok := range scan.Tokens {
		if tok.Token == pg_query.Token_ASCII_59 {
			theirs = append(theirs, int(tok.Start))
		}
		if tok.Token == pg_query.Token_ATOMIC && i > 0 && scan.Tokens[i-1].Token == pg_query.Token_BEGIN_P {
			atomic = true
		}
	}
	mine, ok := semicolons(s, true)
	if !ok || !equalInts(mine, theirs) {
		// A statement boundary the server sees and we do not (or the
		// reverse) must leave the query Unknown.
		if !unknown {
			t.Fatalf("%q: server's ';' at %v, ours at %v (complete=%v), and not Unknown: %+v", s, theirs, mine, ok, ours)
		}
		return
	}
	if srv, ok := semicolons(s, false); !ok || !equalInts(srv, mine) {
		return // a string continued across a comment: libpg_query is not the server here
	}
	stmts, err := pg_query.SplitWithParser(s, false)
	if err != nil || atomic {
		// Invalid SQL runs nowhere; a BEGIN ATOMIC body is split at each
		// ';' on purpose (each piece classified: stricter, never looser).
		return
	}
	var want []string
	for _, st := range stmts {
		if st = trimSpace(st); st != "" {
			want = append(want, st)
		}
	}
	if unknown {
		return
	}
	if len(want) != len(ours) {
		t.Fatalf("%q: server splits %q, ours %+v", s, want, ours)
	}
	for i := range want {
		if want[i] != ours[i].Text {
			t.Fatalf("%q: statement %d is %q to the server, %q to us", s, i, want[i], ours[i].Text)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzSplit(f *testing.F) {
	for _, tc := range singleCases {
		f.Add([]byte(tc.sql))
	}
	for _, tc := range multiCases {
		f.Add([]byte(tc.sql))
	}
	f.Add([]byte{0, 33, 21, 30, 2, 9, 20, 21, 34})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSplit(t, string(data))
		checkSplit(t, generate(data))
	})
}
