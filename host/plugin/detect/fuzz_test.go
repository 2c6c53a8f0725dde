package detect

import (
	"bytes"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(streamText), uint16(17))
	f.Add([]byte("a@b.co x.y@x.y@x.y 4111111111111111 "+tJWT), uint16(40))
	f.Add([]byte(tPEM[:40]+"\n"+tPEM), uint16(3))
	f.Add([]byte("password: 'x\npwd=\"abc\" AKIA"), uint16(9))
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
	f.Fuzz(func(t *testing.T, in []byte, seed uint16) {
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
	})
}
