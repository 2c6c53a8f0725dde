package detect

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestPhone(t *testing.T) {
	run(t, KindPhone, []tcase{
		{"call +44 20 7946 0958 today", []string{"+44 20 7946 0958"}},
		{"tel:+12025550123.", []string{"+12025550123"}},
		{"+1 (202) 555-0123", []string{"+1 (202) 555-0123"}},
		{"+44 (0)20 7946 0958", []string{"+44 (0)20 7946 0958"}},
		{"+33.1.23.45.67.89", []string{"+33.1.23.45.67.89"}},
		{"0044 20 7946 0958", []string{"0044 20 7946 0958"}},
		{"+39 02 1234 5678", []string{"+39 02 1234 5678"}}, // Italian leading zero
		{"(+49 30 1234567)", []string{"+49 30 1234567"}},
		{"020 7946 0958", nil},                   // national format: no default region
		{"+100234567891", nil},                   // not a valid number
		{"+44 20 7946 0958 1234 5678 9012", nil}, // over 17 digits
		{"x+44 20 7946 0958", nil},
		{"1+44 20 7946 0958", nil},
		{"+44 20 7946 0958x", nil},
		{"+44 20 7946 0958:12", nil},
		{"+44 20 7946 0958,5", nil},
		{"+44  20 7946 0958", nil}, // two blanks: "+44" alone is too short
		{"+2026-12-07 20", nil},    // a date
		{"+192.168.100.200", nil},  // an IPv4 address
		{"+1234567.89", nil},       // a decimal
	})
	gb, err := Phone("gb", "US")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []tcase{
		{"call 020 7946 0958 now", []string{"020 7946 0958"}},
		{"(020) 7946 0958", []string{"(020) 7946 0958"}},
		{"US (202) 555-0123.", []string{"(202) 555-0123"}},
		{"order 100234567891", nil},
		{"at 2026-12-07 20:04:05", nil},
	} {
		var got []string
		for _, s := range NewSet(gb).Find([]byte(c.in), nil) {
			got = append(got, c.in[s.Start:s.End])
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Phone(GB, US)(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := Phone("XX"); err == nil || !strings.Contains(err.Error(), `"XX"`) {
		t.Fatalf("Phone(XX): %v", err)
	}
}

// phoneExamples returns phonenumbers' example numbers (mobile and fixed
// line) of every region, formatted INTERNATIONAL and E164.
func phoneExamples() (nums []string, regions int) {
	var rs []string
	for r := range phonenumbers.GetSupportedRegions() {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	for _, r := range rs {
		found := false
		for _, ty := range []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE} {
			if n := phonenumbers.GetExampleNumberForType(r, ty); n != nil {
				nums = append(nums, phonenumbers.Format(n, phonenumbers.INTERNATIONAL), phonenumbers.Format(n, phonenumbers.E164))
				found = true
			}
		}
		if found {
			regions++
		}
	}
	return nums, regions
}

// phoneLookalikes returns n of each kind of number that is not a phone
// number: UUIDs, git SHAs, timestamps, ISO dates, versions, IPv4
// addresses, order numbers, prices.
func phoneLookalikes(r *rand.Rand, n int) []string {
	hex := func(k int) string { return randWord(r, k, "0123456789abcdef") }
	var out []string
	for i := 0; i < n; i++ {
		out = append(out,
			hex(8)+"-"+hex(4)+"-"+hex(4)+"-"+hex(4)+"-"+hex(12),
			hex(40),
			hex(7),
			fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", 1990+r.Intn(50), 1+r.Intn(12), 1+r.Intn(28), r.Intn(24), r.Intn(60), r.Intn(60)),
			fmt.Sprintf("%04d-%02d-%02d", 1990+r.Intn(50), 1+r.Intn(12), 1+r.Intn(28)),
			fmt.Sprintf("%02d.%02d.%04d", 1+r.Intn(28), 1+r.Intn(12), 1990+r.Intn(50)),
			fmt.Sprintf("%d.%d.%d", r.Intn(3), r.Intn(40), r.Intn(20)),
			fmt.Sprintf("v%d.%d.%d.%d", 1+r.Intn(12), r.Intn(10), 10000+r.Intn(90000), r.Intn(9999)),
			fmt.Sprintf("%d.%d.%d.%d", 1+r.Intn(255), r.Intn(256), r.Intn(256), r.Intn(256)),
			fmt.Sprintf("%d", 100000000000+r.Int63n(900000000000)),
			fmt.Sprintf("%d", 10000000+r.Int63n(90000000000000)),
			fmt.Sprintf("%d,%03d.%02d", 1+r.Intn(999), r.Intn(1000), r.Intn(100)),
			fmt.Sprintf("%d.%02d", r.Intn(100000000), r.Intn(100)),
		)
	}
	return out
}

// TestPhoneRecallAndLookalikes measures the phone detector on generated
// valid numbers of every region and on lookalikes (issue 18's bounds: ≥
// 0.98 recall, ≤ 1% of lookalikes flagged), with no default region and
// with four.
func TestPhoneRecallAndLookalikes(t *testing.T) {
	nums, regions := phoneExamples()
	if regions < 20 {
		t.Fatalf("only %d regions have example numbers", regions)
	}
	d, _ := Builtin(KindPhone)
	set := NewSet(d)
	texts := []string{"call %s today", "Tel: %s", "(%s)", "%s", "phone=%s;", `"mobile": "%s"`}
	found, total := 0, 0
	var missed []string
	for i, num := range nums {
		in := fmt.Sprintf(texts[i%len(texts)], num)
		total++
		sp := set.Find([]byte(in), nil)
		if len(sp) == 1 && in[sp[0].Start:sp[0].End] == num {
			found++
		} else if len(missed) < 20 {
			missed = append(missed, num)
		}
	}
	recall := float64(found) / float64(total)
	t.Logf("phone recall: %d of %d example numbers of %d regions (%.4f); missed e.g. %q", found, total, regions, recall, missed)
	if recall < 0.98 {
		t.Errorf("recall %.4f < 0.98", recall)
	}

	r := rand.New(rand.NewSource(12))
	looks := phoneLookalikes(r, 300)
	gb, err := Phone("US", "GB", "DE", "FR")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  *Set
	}{{"no region", set}, {"regions US, GB, DE, FR", NewSet(gb)}} {
		flagged := 0
		var ex []string
		for i, l := range looks {
			in := fmt.Sprintf(texts[i%len(texts)], l)
			if len(c.set.Find([]byte(in), nil)) > 0 {
				flagged++
				if len(ex) < 10 {
					ex = append(ex, l)
				}
			}
		}
		rate := float64(flagged) / float64(len(looks))
		t.Logf("phone lookalikes flagged (%s): %d of %d (%.2f%%) e.g. %q", c.name, flagged, len(looks), 100*rate, ex)
		if rate > 0.01 {
			t.Errorf("%s: %.2f%% of lookalikes flagged", c.name, 100*rate)
		}
	}
}

func TestPhoneStream(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	nums, _ := phoneExamples()
	d, _ := Builtin(KindPhone)
	gb, _ := Phone("GB")
	var b strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "call %s or (020) 7946 0958, at 2026-12-07 20:04:05 ", nums[r.Intn(len(nums))])
	}
	for _, set := range []*Set{NewSet(d), NewSet(gb), allSet(t)} {
		checkChunkings(t, set, []byte(b.String()), r, 100)
	}
}

func TestPhoneIDs(t *testing.T) {
	gb, _ := Phone("GB")
	for _, in := range []string{"173d55c4-f23b-6292-9553-eb6d21ebcd2c", "ID-020 7946 0958", "020 7946 0958-x"} {
		if sp := NewSet(gb).Find([]byte(in), nil); len(sp) != 0 {
			t.Errorf("%q: %v", in, sp)
		}
	}
}

// Detectors are safe for concurrent use: phonenumbers' caches included
// (run with -race).
func TestPhoneConcurrent(t *testing.T) {
	gb, _ := Phone("GB")
	set := NewSet(gb)
	in := []byte("call +44 20 7946 0958 or 020 7946 0958 or +1 (202) 555-0123")
	want := set.Find(in, nil)
	if len(want) != 3 {
		t.Fatalf("spans %v", want)
	}
	done := make(chan []Span)
	for range 4 {
		go func() {
			var got []Span
			for range 50 {
				got = set.Find(in, got[:0])
			}
			done <- got
		}()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent Find: %v, want %v", got, want)
		}
	}
}
