package detect

import (
	"math/rand"
	"strings"
	"testing"
)

// randWord returns n random bytes of [A-Za-z0-9_].
func randWord(r *rand.Rand, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}

const (
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	word  = alnum + "_"
)

// Issue 18: the "gh" gate hid github_pat_ tokens in text without "gh",
// and so in stream chunks that lacked it.
func TestGitHubPATWithoutGH(t *testing.T) {
	r := rand.New(rand.NewSource(18))
	d, _ := Builtin(KindGitHub)
	set := NewSet(d)
	for i := 0; i < 200; i++ {
		pat := "github_pat_" + randWord(r, 82, word)
		if strings.Contains(pat, "gh") {
			continue // the point is text without "gh"
		}
		in := "token: " + pat + " end"
		run(t, KindGitHub, []tcase{{in, []string{pat}}})
		checkChunkings(t, set, []byte(in), r, 20)
	}
}

func TestIBANDashes(t *testing.T) {
	run(t, KindIBAN, []tcase{
		{"IBAN DE89-3704-0044-0532-0130-00.", []string{"DE89-3704-0044-0532-0130-00"}},
		{"GB82-WEST-1234-5698-7654-32", []string{"GB82-WEST-1234-5698-7654-32"}},
		{"DE89-3704-0044-0532-0130-01", nil},  // check digits
		{"DE89--3704-0044-0532-0130-00", nil}, // double separator
		{"DE89 3704 0044 0532 0130 00-x", []string{"DE89 3704 0044 0532 0130 00"}},
	})
}

func TestWholeGitLabSlack(t *testing.T) {
	routable := "glpat-" + strings.Repeat("aB3_-x", 5) + ".01.0y0b2a1lk"
	run(t, KindGitLab, []tcase{
		{"PRIVATE-TOKEN: " + routable + " ok", []string{routable}},
		{"token " + tGL + ". Next", []string{tGL}},
		{"token " + tGL + "..x", []string{tGL}},
		{"glpat-" + strings.Repeat("aB3_-x", 50) + ".01.0y0b2a1lk", []string{"glpat-" + strings.Repeat("aB3_-x", 50) + ".01.0y0b2a1lk"}}, // a 300-byte payload
	})
	cfg := "xoxe.xoxp-1-" + strings.Repeat("Mi0yLTM0MTQwNDE0MDE3Ni0z", 7)
	refresh := "xoxe-1-" + strings.Repeat("My0xLTMxNzcwMjQ0MTcxMy01", 6)
	run(t, KindSlack, []tcase{
		{`"access_token": "` + cfg + `"`, []string{cfg}},
		{"xoxe.xoxb-1-" + strings.Repeat("A1b2", 40), []string{"xoxe.xoxb-1-" + strings.Repeat("A1b2", 40)}},
		{"refresh=" + refresh + "\n", []string{refresh}},
		{"xoxe-1-xxx", nil},
	})
	r := rand.New(rand.NewSource(6))
	for _, n := range []string{KindGitLab, KindSlack} {
		d, _ := Builtin(n)
		checkChunkings(t, NewSet(d), []byte("a "+routable+" b "+cfg+" c "+refresh+". "+routable+"."), r, 50)
	}
}
