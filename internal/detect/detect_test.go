package detect

import (
	"bytes"
	"strings"
	"testing"
)

const (
	tJWT   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	tGHP   = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
	tPAT   = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW"
	tAWSID = "AKIAIOSFODNN7EXAMPLE"
	tAWSSK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	tSlack = "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	tGL    = "glpat-Zx8Qw2Er4Ty6Ui8Op0As"
	tEnt   = "Q1N2ZjRkZ2hqa2xtbm9wcXJzdHV2d3h5ejAx"
	tPEM   = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8\nq1w2e3r4t5y6u7i8o9p0aSdFgHjKlZxCvBnM\n-----END RSA PRIVATE KEY-----"
)

type tcase struct {
	in   string
	want []string // matched substrings, in order
}

func run(t *testing.T, name string, cases []tcase) {
	t.Helper()
	d, err := Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		spans := NewSet(d).Find([]byte(c.in), nil)
		var got []string
		for _, s := range spans {
			if s.Kind != name {
				t.Errorf("%s: kind %q", name, s.Kind)
			}
			got = append(got, c.in[s.Start:s.End])
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s(%q) = %q, want %q", name, c.in, got, c.want)
		}
	}
}

func TestEmail(t *testing.T) {
	run(t, KindEmail, []tcase{
		{"contact alice.smith@example.com today", []string{"alice.smith@example.com"}},
		{"<bob+tag@mail.co.uk>.", []string{"bob+tag@mail.co.uk"}},
		{"mail me at x_y@sub-dom.example.org.", []string{"x_y@sub-dom.example.org"}},
		{"if a@b { return }", nil},
		{"user@localhost", nil},
		{"@Override public void", nil},
		{"x@y.z", nil},
		{"a.b@c.de@f.gh", nil},
		{".dot@example.com", []string{"dot@example.com"}[:0]},
		{"v1.2@3.4", nil},
		{strings.Repeat("a", 65) + "@example.com", nil},
		{strings.Repeat("a", 64) + "@example.com", []string{strings.Repeat("a", 64) + "@example.com"}},
	})
}

func TestCreditCard(t *testing.T) {
	run(t, KindCreditCard, []tcase{
		{"card 4111 1111 1111 1111 exp 12/29", []string{"4111 1111 1111 1111"}},
		{"mc=5500-0000-0000-0004;", []string{"5500-0000-0000-0004"}},
		{"amex 378282246310005.", []string{"378282246310005"}},
		{"discover 6011111111111117", []string{"6011111111111117"}},
		{"order 4111 1111 1111 1112", nil},  // Luhn fails
		{"id 1234567890123452", nil},        // unknown IIN (Luhn ok)
		{"ratio 0.4111111111111111", nil},   // decimal fraction
		{"amount 4111111111111111.50", nil}, // decimal
		{"ID4111111111111111", nil},         // glued to a word
		{"41111111111111111111", nil},       // 20 digits
		{"2024-01-15 2024-01-16", nil},      // dates
		{"ts 1700000000000 ms", nil},
	})
}

func TestIBAN(t *testing.T) {
	run(t, KindIBAN, []tcase{
		{"IBAN: DE89 3704 0044 0532 0130 00.", []string{"DE89 3704 0044 0532 0130 00"}},
		{"GB82WEST12345698765432", []string{"GB82WEST12345698765432"}},
		{"to FR1420041010050500013M02606 now", []string{"FR1420041010050500013M02606"}},
		{"DE89 3704 0044 0532 0130 01", nil}, // wrong check digits
		{"GB82WEST12345698765431", nil},
		{"GB82WEST123456987654321", nil}, // too long
		{"XX89370400440532013000", nil},  // unknown country
		{"SKU AB12 in stock", nil},
	})
}

func TestTokens(t *testing.T) {
	run(t, KindAWSAccess, []tcase{
		{"id=" + tAWSID + "\n", []string{tAWSID}},
		{"ASIAY34FZKBOKMUTVV7A", []string{"ASIAY34FZKBOKMUTVV7A"}},
		{"AKIAIOSFODNN7EXAMPL", nil},
		{"XAKIAIOSFODNN7EXAMPLE", nil},
		{"AKIAIOSFODNN7EXAMPLEX", nil},
	})
	run(t, KindAWSSecret, []tcase{
		{"aws_secret_access_key = " + tAWSSK, []string{tAWSSK}},
		{`"SecretAccessKey": "` + tAWSSK + `"`, []string{tAWSSK}},
		{"AWS_SECRET_ACCESS_KEY=" + tAWSSK, []string{tAWSSK}},
		{"checksum " + tAWSSK, nil},                            // no hint
		{"aws " + strings.Repeat("x", 70) + " " + tAWSSK, nil}, // hint too far
		{"aws key da39a3ee5e6b4b0d3255bfef95601890afd80709", nil},
	})
	run(t, KindGitHub, []tcase{
		{"token: " + tGHP, []string{tGHP}},
		{tPAT, []string{tPAT}},
		{"ghp_short", nil},
		{"xghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A", nil},
	})
	run(t, KindGitLab, []tcase{
		{"PRIVATE-TOKEN: " + tGL, []string{tGL}},
		{"glpat-short", nil},
	})
	run(t, KindSlack, []tcase{
		{"SLACK=" + tSlack, []string{tSlack}},
		{"xoxz-1234567890-abcdef", nil},
		{"xoxb-123", nil},
	})
}

func TestJWT(t *testing.T) {
	noAlg := "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl" // {"typ":"JWT"}
	none := "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0In0."             // alg none, empty signature
	run(t, KindJWT, []tcase{
		{"Authorization: Bearer " + tJWT, []string{tJWT}},
		{"token " + none + " ok", []string{none}},
		{"(" + tJWT + ").", []string{tJWT}},
		{noAlg, nil},
		{"eyJhbGciOiJIUzI1NiJ9.eyJ", nil},
		{"eyJhbGciOiJIUzI1NiJ9", nil},
	})
}

func TestPEM(t *testing.T) {
	run(t, KindPEM, []tcase{
		{"key:\n" + tPEM + "\nrest", []string{tPEM}},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----", []string{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"}},
		{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", nil},
		{"-----BEGIN EC PRIVATE KEY-----\nMHcC (truncated", []string{"-----BEGIN EC PRIVATE KEY-----\nMHcC (truncated"}},
	})
}

func TestPassword(t *testing.T) {
	run(t, KindPassword, []tcase{
		{"password=hunter2&user=bob", []string{"hunter2"}},
		{`{"password": "s3cr3t pass", "user": "x"}`, []string{"s3cr3t pass"}},
		{"export PGPASSWORD='p@ss w0rd'", []string{"p@ss w0rd"}},
		{"pwd: abc123\n", []string{"abc123"}},
		{"Passwd := topsecret;", []string{"topsecret"}},
		{`"passphrase" => "correct horse"`, []string{"correct horse"}},
		{"DB_PASSWORD=changeme", []string{"changeme"}},
		{"Your password reset link was sent.", nil},
		{"password_hash=$2b$10$abc", nil},
		{"if password == x {", nil},
		{`password = ""`, nil},
		{"compass=north", nil},
		// Unquoted values run on through punctuation that does not
		// separate: the whole password is masked.
		{"password=p@ss,w0rd)x;y&z next", []string{"p@ss,w0rd)x;y&z"}},
		{"Password=abc;Host=db;", []string{"abc"}},
		{"pwd=s3cr3t, user=bob", []string{"s3cr3t"}},
		{"f(password=abc) + 1", []string{"abc"}},
		{"{pwd=abc}", []string{"abc"}},
	})
}

func TestHighEntropy(t *testing.T) {
	run(t, KindHighEntropy, []tcase{
		{"key " + tEnt + " end", []string{tEnt}},
		{"sig=SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", []string{"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"}},
		{"id 550e8400-e29b-41d4-a716-446655440000", nil},         // UUID
		{"commit da39a3ee5e6b4b0d3255bfef95601890afd80709", nil}, // git SHA
		{"sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", nil},
		{"img iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", nil},
		{"jpg /9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL", nil},
		{"class AbstractSingletonProxyFactoryBean2 extends", nil},
		{"path /home/user/Projects/app2/src/main.go", nil},
		{"ordinary_snake_case_identifier_name", nil},
		{strings.Repeat("Ab1", 100), nil}, // longer than 256
	})
}

func TestPattern(t *testing.T) {
	d, err := Pattern("employee_id", `EMP-[0-9]{6}`)
	if err != nil {
		t.Fatal(err)
	}
	got := d.Find([]byte("a EMP-123456 b EMP-12 c EMP-654321"), nil)
	if len(got) != 2 || got[0].Start != 2 || got[1].Kind != "employee_id" {
		t.Fatalf("got %v", got)
	}
	if _, err := Pattern("x", "("); err == nil {
		t.Fatal("bad regexp accepted")
	}
	if _, err := Pattern("", "a"); err == nil {
		t.Fatal("empty kind accepted")
	}
	if _, err := Builtin("nope"); err == nil {
		t.Fatal("unknown builtin accepted")
	}
}

type fixed []Span

func (f fixed) Kind() string                     { return "fixed" }
func (f fixed) Find(b []byte, dst []Span) []Span { return append(dst, f...) }

func TestSetMerge(t *testing.T) {
	s := NewSet(fixed{{10, 20, "b"}, {0, 5, "a"}, {4, 8, "c"}, {8, 9, "d"}, {15, 30, "e"}, {40, 50, "f"}, {-3, 1, "g"}, {7, 7, "h"}, {45, 99, "i"}})
	got := s.Find(make([]byte, 60), nil)
	want := []Span{{0, 8, "a"}, {8, 9, "d"}, {10, 30, "b"}, {40, 60, "f"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	// Same extent: the first detector's kind wins; longer spans win ties on Start.
	all := allSet(t)
	in := []byte("aws_secret_access_key=" + tAWSSK)
	sp := all.Find(in, nil)
	if len(sp) != 1 || sp[0].Kind != KindAWSSecret {
		t.Fatalf("got %v", sp)
	}
}

func allSet(t testing.TB) *Set {
	var ds []Detector
	for _, n := range Names() {
		d, err := Builtin(n)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return NewSet(ds...)
}

// fullSet is allSet with every gitleaks rule.
func fullSet(t testing.TB) *Set {
	rules, err := NewRules()
	if err != nil {
		t.Fatal(err)
	}
	return NewSet(append(allSet(t).ds, rules)...)
}

func TestMask(t *testing.T) {
	in := []byte("user alice@example.com card 4111 1111 1111 1111 end")
	set := allSet(t)
	spans := set.Find(in, nil)
	if len(spans) != 2 {
		t.Fatalf("spans %v", spans)
	}
	if got := string(Mask(nil, in, spans, Redact, nil)); got != "user [REDACTED:email] card [REDACTED:credit_card] end" {
		t.Fatalf("redact: %q", got)
	}
	p := Mask(nil, in, spans, Partial, nil)
	if len(p) != len(in) || string(p) != "user *************.com card ***************1111 end" {
		t.Fatalf("partial: %q", p)
	}
	short := Mask(nil, []byte("pw=abc12"), []Span{{3, 8, "x"}}, Partial, nil)
	if string(short) != "pw=*****" {
		t.Fatalf("short partial: %q", short)
	}
	u := []byte("pässwörd-ünïcödé")
	utf := Mask(nil, u, []Span{{0, len(u), "x"}}, Partial, nil)
	if !bytes.HasSuffix(utf, []byte("*cödé")) || len(utf) != len(u) {
		t.Fatalf("utf8 partial: %q", utf)
	}
	h1 := string(Mask(nil, in, spans, Hash, []byte("k1")))
	h2 := string(Mask(nil, in, spans, Hash, []byte("k1")))
	h3 := string(Mask(nil, in, spans, Hash, []byte("k2")))
	if h1 != h2 || h1 == h3 || !strings.HasPrefix(h1, "user hash:") || len(h1) != len("user hash:0123456789abcdef card hash:0123456789abcdef end") {
		t.Fatalf("hash: %q %q %q", h1, h2, h3)
	}
	// Equal values hash equal across inputs (joinable).
	other := []byte("to: alice@example.com")
	ho := string(Mask(nil, other, set.Find(other, nil), Hash, []byte("k1")))
	if ho[4:] != h1[5:26] {
		t.Fatalf("hash not joinable: %q vs %q", ho, h1)
	}
	// dst is appended to.
	if got := string(Mask([]byte("> "), []byte("x"), nil, Redact, nil)); got != "> x" {
		t.Fatalf("append: %q", got)
	}
	for _, s := range []string{"redact", "PARTIAL", "Hash"} {
		st, err := ParseStrategy(s)
		if err != nil || !strings.EqualFold(st.String(), s) {
			t.Fatalf("ParseStrategy(%q) = %v, %v", s, st, err)
		}
	}
	if _, err := ParseStrategy("rot13"); err == nil {
		t.Fatal("bad strategy accepted")
	}
}

// Whole covers a value of any length: a column masked by name must not
// leak a value longer than a Pattern's limit.
func TestWholeCoversLongValues(t *testing.T) {
	long := []byte(strings.Repeat("lorem ipsum ", 100))
	set := NewSet(Whole())
	if got := set.Find(long, nil); len(got) != 1 || got[0].Start != 0 || got[0].End != len(long) || got[0].Kind != KindWhole {
		t.Fatalf("spans of a %d-byte value: %v", len(long), got)
	}
	if got := set.Find(nil, nil); len(got) != 0 {
		t.Fatalf("an empty value has spans: %v", got)
	}
	// The regexp way to say it stops at PatternMaxLen: why Whole exists.
	re, err := Pattern("p", `(?s).+`)
	if err != nil {
		t.Fatal(err)
	}
	if got := NewSet(re).Find(long, nil); len(got) != 0 {
		t.Fatalf("a pattern matched %v past PatternMaxLen: drop Whole if patterns no longer have the limit", got)
	}
	// In a Stream every byte is masked as it passes, in any chunking.
	var out bytes.Buffer
	s := NewStream(set, Redact, nil)
	for i := 0; i < len(long); i += 7 {
		out.Write(s.Write(long[i:min(i+7, len(long))]))
	}
	out.Write(s.Flush())
	if out.Len() == 0 || bytes.Contains(out.Bytes(), []byte("lorem")) {
		t.Fatalf("stream output %q", out.String())
	}
}
