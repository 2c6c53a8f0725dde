package detect

import (
	"bytes"
	"slices"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(streamText), uint16(17))
	f.Add([]byte("a@b.co x.y@x.y@x.y 4111111111111111 "+tJWT), uint16(40))
	f.Add([]byte(tPEM[:40]+"\n"+tPEM), uint16(3))
	f.Add([]byte("password: 'x\npwd=\"abc\" AKIA"), uint16(9))
	f.Add([]byte("u mysql://r:t@h:1/x amqps://:a:b@c@q Basic dXNlcjpwYXNz= glpat-Zx8Qw2Er4Ty6Ui8Op0As.01.x xoxe.xoxp-1-abcdefghijk"), uint16(11))
	f.Add([]byte("4111 1111 1111 1111 5500 0000 0000 0004 visa 4111111111111111 5500000000000004 DE89-3704-0044-0532-0130-00"), uint16(23))
	f.Add([]byte("+1 (202) 555-0123 (+44 (0)20 7946 0958) 0044.20.7946.0958 +33 1 23 45 67 89:1"), uint16(29))
}

func FuzzSetFind(f *testing.F) {
	fuzzSeeds(f)
	set := allSet(f)
	f.Fuzz(func(t *testing.T, in []byte, _ uint16) {
		spans := set.Find(in, nil)
		prev := 0
		for _, s := range spans {
			if s.Start < prev || s.End <= s.Start || s.End > len(in) || s.Kind == "" {
				t.Fatalf("bad spans %v for %q", spans, in)
			}
			prev = s.End
		}
		Mask(nil, in, spans, Partial, nil)
	})
}

func FuzzStream(f *testing.F) {
	fuzzSeeds(f)
	set := allSet(f)
	f.Fuzz(func(t *testing.T, in []byte, seed uint16) { fuzzStream(t, set, in, seed) })
}

// FuzzStreamPhoneRegions is FuzzStream for a phone detector that also reads
// national numbers: the candidates without '+' take another path.
func FuzzStreamPhoneRegions(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte("(020) 7946 0958 call 020 7946 0958, US (202) 555-0123.5 020-7946-0958"), uint16(31))
	d, err := Phone("GB", "US")
	if err != nil {
		f.Fatal(err)
	}
	set := NewSet(d)
	f.Fuzz(func(t *testing.T, in []byte, seed uint16) { fuzzStream(t, set, in, seed) })
}

func fuzzStream(t *testing.T, set *Set, in []byte, seed uint16) {
	{
		want := wholeMask(set, in, Partial, nil)
		// Split at several offsets derived from seed.
		var chunks [][]byte
		rest := in
		for x := uint32(seed) | 1; len(rest) > 0; x = x*1103515245 + 12345 {
			n := min(len(rest), int(x>>16)%(int(seed%97)+2))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got := streamMask(set, chunks, Partial, nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("stream != whole for %q (chunks %d)\n got %q\nwant %q", in, len(chunks), got, want)
		}
		i := int(seed) % (len(in) + 1)
		if got := streamMask(set, [][]byte{in[:i], in[i:]}, Partial, nil); !bytes.Equal(got, want) {
			t.Fatalf("split at %d differs for %q\n got %q\nwant %q", i, in, got, want)
		}
	}
}

// findUnfiltered is what a Set finds without its one-pass needs: every
// detector's own Find, merged.
func findUnfiltered(s *Set, b []byte) []Span {
	var dst []Span
	for _, d := range s.ds {
		dst = d.Find(b, dst)
	}
	return mergeSpans(dst, 0, len(b))
}

// FuzzNeeds holds the builtins' needs to the scanners: skipping a scanner
// because the input lacks what it needs never loses a span.
func FuzzNeeds(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range needCorpus {
		f.Add([]byte(s), uint16(0))
	}
	set := allSet(f)
	f.Fuzz(func(t *testing.T, in []byte, _ uint16) {
		if got, want := set.Find(in, nil), findUnfiltered(set, in); !slices.Equal(got, want) {
			t.Fatalf("%q: with needs %v, without %v", in, got, want)
		}
	})
}

// needCorpus has a span of every kind, each with the bytes its need names
// (and then without them).
var needCorpus = []string{
	streamText, tJWT, tGHP, tPAT, tAWSID, "aws secret " + tAWSSK, tSlack, tGL, tEnt, tPEM,
	"card 4111 1111 1111 1111 ok", "4111-1111-1111-1111", "iban DE89370400440532013000",
	"mail bob@example.org", "password=hunter2", "PWD: \"x y\"", "passphrase := 'abc'",
	"5f4dcc3b5aa765d61d8327deb882cf99", "Alice Martin", "2024-05-01T10:42:07Z", "+49 30 1234567",
}

func TestNeedsNeverHideASpan(t *testing.T) {
	set := allSet(t)
	for _, s := range needCorpus {
		want := findUnfiltered(set, []byte(s))
		if got := set.Find([]byte(s), nil); !slices.Equal(got, want) {
			t.Errorf("%q: with needs %v, without %v", s, got, want)
		}
	}
	// The corpus does exercise the scanners behind the needs.
	kinds := map[string]bool{}
	for _, s := range needCorpus {
		for _, sp := range set.Find([]byte(s), nil) {
			kinds[sp.Kind] = true
		}
	}
	for _, b := range builtins {
		if b.need != nil && !kinds[b.kind] {
			t.Errorf("no corpus input has a %s span", b.kind)
		}
	}
}
