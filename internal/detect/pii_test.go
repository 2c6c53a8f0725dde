package detect

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"math/rand"
	"strings"
	"testing"
)

// TestPIIRecallAndLookalikes measures the PII detectors on generated
// personal data (e-mail addresses, cards of every brand, IBANs of 28
// countries, set in text) and the mask plugin's default set plus phone on
// generated lookalikes (UUIDs, SHAs, timestamps, versions, order numbers,
// data: URIs of images, identifiers): recall ≥ 0.98, lookalikes ≤ 1%.
func TestPIIRecallAndLookalikes(t *testing.T) {
	r := rand.New(rand.NewSource(18))
	ds, err := Resolve([]string{"email", "credit_card", "iban", "secrets", "high_entropy", "phone"})
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(ds...)
	covered := func(text, value string) bool {
		i := strings.Index(text, value)
		for _, sp := range set.Find([]byte(text), nil) {
			if sp.Start <= i && sp.End >= i+len(value) {
				return true
			}
		}
		return false
	}
	contexts := []string{"contact %s today", "<td>%s</td>", `{"v":"%s"}`, "value=%s;", "(%s)", "%s"}
	recall := func(name string, values, prefixes []string) {
		t.Helper()
		hit := 0
		var missed []string
		for i, v := range values {
			text := fmt.Sprintf(contexts[i%len(contexts)], v)
			if prefixes != nil {
				text = fmt.Sprintf(contexts[i%len(contexts)], prefixes[i]+v)
			}
			if covered(text, v) {
				hit++
			} else if len(missed) < 5 {
				missed = append(missed, text)
			}
		}
		rate := float64(hit) / float64(len(values))
		t.Logf("%s: recall %.4f (%d/%d); missed e.g. %q", name, rate, hit, len(values), missed)
		if rate < 0.98 {
			t.Errorf("%s recall %.4f < 0.98", name, rate)
		}
	}

	var emails []string
	tlds := []string{"com", "org", "io", "de", "co.uk", "museum", "technology", "fr", "info", "dev"}
	for range 1000 {
		local := randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789", 1+r.Intn(12))
		switch r.Intn(4) {
		case 0:
			local += "." + randFrom(r, "abcdefghijklmnopqrstuvwxyz", 1+r.Intn(8))
		case 1:
			local += "+" + randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789", 1+r.Intn(6))
		case 2:
			local += "_" + randFrom(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1+r.Intn(6))
		}
		domain := randFrom(r, "abcdefghijklmnopqrstuvwxyz", 2+r.Intn(10))
		if r.Intn(3) == 0 {
			domain = randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789", 1+r.Intn(6)) + "-" + domain
		}
		if r.Intn(3) == 0 {
			domain = "mail." + domain
		}
		emails = append(emails, local+"@"+domain+"."+tlds[r.Intn(len(tlds))])
	}
	recall("email", emails, nil)

	// Cards of every brand, in the groups a person writes them in, with
	// the context a card has ("card", a brand name).
	brands := []struct {
		name   string
		prefix []string
		length int
		groups []int
	}{
		{"Visa", []string{"4"}, 16, []int{4, 4, 4, 4}},
		{"Mastercard", []string{"51", "53", "55", "2221", "2720"}, 16, []int{4, 4, 4, 4}},
		{"Amex", []string{"34", "37"}, 15, []int{4, 6, 5}},
		{"Discover", []string{"6011", "65", "644"}, 16, []int{4, 4, 4, 4}},
		{"JCB", []string{"3528", "3589"}, 16, []int{4, 4, 4, 4}},
		{"Diners Club", []string{"36", "38", "300", "305"}, 14, []int{4, 6, 4}},
		{"UnionPay", []string{"62"}, 16, []int{4, 4, 4, 4}},
		{"Maestro", []string{"6759", "5018"}, 16, []int{4, 4, 4, 4}},
	}
	var cards, brandNames []string
	for i := range 800 {
		b := brands[i%len(brands)]
		n := luhnComplete(r, b.prefix[r.Intn(len(b.prefix))], b.length)
		v := n
		if i%2 == 0 {
			v = group(n, b.groups, " ")
		}
		cards = append(cards, v)
		brandNames = append(brandNames, "card ("+b.name+") ")
	}
	recall("credit_card", cards, brandNames)

	var ibans []string
	for i := range 28 * 30 {
		c := ibanCountries[i%len(ibanCountries)]
		v := makeIBAN(r, c.code, c.bban)
		if i%2 == 0 {
			v = group(v, nil, " ")
		}
		ibans = append(ibans, v)
	}
	recall("iban", ibans, nil)

	// Lookalikes: none should be flagged.
	var looks []string
	for range 200 {
		looks = append(looks,
			fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.Intn(1<<16), r.Intn(1<<12), r.Intn(1<<12), r.Int63n(1<<48)),
			randFrom(r, "0123456789abcdef", 40),
			randFrom(r, "0123456789abcdef", 64),
			fmt.Sprintf("2026-%02d-%02dT%02d:%02d:%02d.%06dZ", 1+r.Intn(12), 1+r.Intn(28), r.Intn(24), r.Intn(60), r.Intn(60), r.Intn(1e6)),
			fmt.Sprintf("v%d.%d.%d", r.Intn(20), r.Intn(100), r.Intn(1000)),
			"order "+luhnComplete(r, fmt.Sprint(1+r.Intn(9)), 16+r.Intn(4)),
			"data:image/png;base64,"+base64.StdEncoding.EncodeToString(randBytes(r, 60+r.Intn(400))),
			randIdentifier(r),
		)
	}
	flagged := 0
	var examples []string
	for _, v := range looks {
		if sp := set.Find([]byte("x "+v+" y"), nil); len(sp) > 0 {
			flagged++
			if len(examples) < 8 {
				examples = append(examples, sp[0].Kind+": "+v)
			}
		}
	}
	rate := float64(flagged) / float64(len(looks))
	t.Logf("lookalikes: %.4f flagged (%d/%d); e.g. %q", rate, flagged, len(looks), examples)
	if rate > 0.01 {
		t.Errorf("lookalikes flagged %.4f > 0.01", rate)
	}
}

func randFrom(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// randIdentifier is a CamelCase or snake_case name of a few words.
func randIdentifier(r *rand.Rand) string {
	words := []string{"user", "account", "order", "Payment", "Service", "handler", "Request", "token", "Cache", "retry", "Policy", "window"}
	var b strings.Builder
	for i := range 3 + r.Intn(4) {
		w := words[r.Intn(len(words))]
		if i > 0 && r.Intn(2) == 0 {
			b.WriteByte('_')
		}
		b.WriteString(w)
	}
	return b.String()
}

// luhnComplete is prefix followed by random digits and a Luhn check digit,
// length digits in all.
func luhnComplete(r *rand.Rand, prefix string, length int) string {
	d := []byte(prefix)
	for len(d) < length-1 {
		d = append(d, byte('0'+r.Intn(10)))
	}
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if (len(d)-1-i)%2 == 0 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return string(append(d, byte('0'+(10-sum%10)%10)))
}

// group splits s into groups of the given sizes (4s when nil).
func group(s string, sizes []int, sep string) string {
	var parts []string
	for i := 0; len(s) > 0; i++ {
		n := 4
		if sizes != nil && i < len(sizes) {
			n = sizes[i]
		}
		n = min(n, len(s))
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return strings.Join(parts, sep)
}

// ibanCountries: each country's BBAN as a pattern of 'n' (digit), 'a'
// (upper-case letter) and 'c' (either).
var ibanCountries = []struct{ code, bban string }{
	{"DE", "nnnnnnnnnnnnnnnnnn"}, {"FR", "nnnnnnnnnncccccccccccnn"}, {"GB", "aaaannnnnnnnnnnnnn"},
	{"ES", "nnnnnnnnnnnnnnnnnnnn"}, {"IT", "annnnnnnnnncccccccccccc"}, {"NL", "aaaannnnnnnnnn"},
	{"BE", "nnnnnnnnnnnn"}, {"AT", "nnnnnnnnnnnnnnnn"}, {"CH", "nnnnncccccccccccc"},
	{"PL", "nnnnnnnnnnnnnnnnnnnnnnnn"}, {"PT", "nnnnnnnnnnnnnnnnnnnnn"}, {"SE", "nnnnnnnnnnnnnnnnnnnn"},
	{"NO", "nnnnnnnnnnn"}, {"DK", "nnnnnnnnnnnnnn"}, {"FI", "nnnnnnnnnnnnnn"},
	{"IE", "aaaannnnnnnnnnnnnn"}, {"LU", "nnnccccccccccccc"}, {"CZ", "nnnnnnnnnnnnnnnnnnnn"},
	{"SK", "nnnnnnnnnnnnnnnnnnnn"}, {"HU", "nnnnnnnnnnnnnnnnnnnnnnnn"}, {"RO", "aaaacccccccccccccccc"},
	{"GR", "nnnnnnncccccccccccccccc"}, {"HR", "nnnnnnnnnnnnnnnnn"}, {"SI", "nnnnnnnnnnnnnnn"},
	{"BG", "aaaannnnnncccccccc"}, {"LT", "nnnnnnnnnnnnnnnn"}, {"LV", "aaaaccccccccccccc"}, {"EE", "nnnnnnnnnnnnnnnn"},
}

// makeIBAN fills a BBAN pattern at random and computes the check digits
// (ISO 13616: mod 97).
func makeIBAN(r *rand.Rand, country, pattern string) string {
	var bban strings.Builder
	for _, p := range pattern {
		switch p {
		case 'n':
			bban.WriteByte(byte('0' + r.Intn(10)))
		case 'a':
			bban.WriteByte(byte('A' + r.Intn(26)))
		default:
			if r.Intn(2) == 0 {
				bban.WriteByte(byte('0' + r.Intn(10)))
			} else {
				bban.WriteByte(byte('A' + r.Intn(26)))
			}
		}
	}
	digits := func(s string) string {
		var b strings.Builder
		for _, c := range s {
			if c >= 'A' && c <= 'Z' {
				fmt.Fprint(&b, int(c-'A')+10)
			} else {
				b.WriteRune(c)
			}
		}
		return b.String()
	}
	n, _ := new(big.Int).SetString(digits(bban.String()+country+"00"), 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("%s%02d%s", country, check, bban.String())
}

func TestAllowlist(t *testing.T) {
	set, err := fullSet(t).WithAllow(`noreply@example\.com|4111 1111 1111 1111`)
	if err != nil {
		t.Fatal(err)
	}
	in := []byte("from noreply@example.com to bob@example.com, card 4111 1111 1111 1111 and 5500 0000 0000 0004\n")
	var kinds []string
	for _, sp := range set.Find(in, nil) {
		kinds = append(kinds, string(in[sp.Start:sp.End]))
	}
	if strings.Join(kinds, ",") != "bob@example.com,5500 0000 0000 0004" {
		t.Fatalf("spans %q", kinds)
	}
	// Part of a value is not the value: the allowlist matches whole spans.
	if sp := set.Find([]byte("x noreply@example.com.evil.io y"), nil); len(sp) != 1 {
		t.Fatalf("a longer address that starts like an allowed one: %v", sp)
	}
	want := wholeMask(set, in, Redact, nil)
	r := rand.New(rand.NewSource(5))
	for range 200 {
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+r.Intn(9))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := streamMask(set, chunks, Redact, nil); string(got) != string(want) {
			t.Fatalf("stream %q != whole %q", got, want)
		}
	}
	if _, err := allSet(t).WithAllow("("); err == nil {
		t.Fatal("a broken allowlist compiled")
	}
}
