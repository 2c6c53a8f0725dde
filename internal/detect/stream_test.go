package detect

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

var streamText = "Hello alice@example.com, your card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00.\n" +
	"id=" + tAWSID + " aws_secret_access_key = " + tAWSSK + "\n" +
	"gh " + tGHP + " pat " + tPAT + " gl " + tGL + " slack " + tSlack + "\n" +
	"Authorization: Bearer " + tJWT + "\n" + tPEM + "\n" +
	`{"password": "s3cr3t pass", "user": "bob"} pwd=hunter2 blob ` + tEnt + " done\n" +
	"password reset for a@b in code; order 4111 1111 1111 1112; uuid 550e8400-e29b-41d4-a716-446655440000\n" +
	"db redis://default:s3cret@cache:6379 Authorization: Basic dXNlcjpwYXNz call +44 20 7946 0958\n"

func wholeMask(set *Set, in []byte, st Strategy, key []byte) []byte {
	return Mask(nil, in, set.Find(in, nil), st, key)
}

func streamMask(set *Set, chunks [][]byte, st Strategy, key []byte) []byte {
	s := NewStream(set, st, key)
	var out []byte
	for _, c := range chunks {
		out = append(out, s.Write(c)...)
	}
	return append(out, s.Flush()...)
}

func TestStreamTextHasEveryKind(t *testing.T) {
	set := allSet(t)
	seen := map[string]bool{}
	for _, sp := range set.Find([]byte(streamText), nil) {
		seen[sp.Kind] = true
	}
	for _, n := range Names() {
		// high_entropy and aws_secret_key overlap others; check each alone.
		d, _ := Builtin(n)
		if len(d.Find([]byte(streamText), nil)) == 0 {
			t.Errorf("stream text has no %s", n)
		}
	}
}

func TestStreamSplitEveryOffset(t *testing.T) {
	set := allSet(t)
	in := []byte(streamText)
	for _, st := range []Strategy{Redact, Partial, Hash} {
		want := wholeMask(set, in, st, []byte("k"))
		for i := 0; i <= len(in); i++ {
			got := streamMask(set, [][]byte{in[:i], in[i:]}, st, []byte("k"))
			if !bytes.Equal(got, want) {
				t.Fatalf("%v split at %d:\n got %q\nwant %q", st, i, got, want)
			}
		}
		var ones [][]byte
		for i := range in {
			ones = append(ones, in[i:i+1])
		}
		if got := streamMask(set, ones, st, []byte("k")); !bytes.Equal(got, want) {
			t.Fatalf("%v 1-byte chunks:\n got %q\nwant %q", st, got, want)
		}
	}
}

func TestStreamRandomChunks(t *testing.T) {
	set := allSet(t)
	r := rand.New(rand.NewSource(7))
	in := []byte(strings.Repeat(streamText, 20))
	want := wholeMask(set, in, Redact, nil)
	for iter := 0; iter < 50; iter++ {
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+r.Intn(200))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := streamMask(set, chunks, Redact, nil); !bytes.Equal(got, want) {
			t.Fatalf("random chunks differ")
		}
	}
}

func TestStreamBoundedHold(t *testing.T) {
	set := allSet(t)
	r := rand.New(rand.NewSource(3))
	words := strings.Fields("the quick brown fox jumps over 12 lazy dogs at 10:42:07 2024-05-01 total=1234.50 EUR " +
		"user_id name@host ls -la /var/log drwxr-xr-x AbCdEf 0123456789 ---- ==== ****")
	s := NewStream(set, Redact, nil)
	maxHeld, total := 0, 0
	for total < 4<<20 {
		var chunk []byte
		for len(chunk) < 1+r.Intn(4096) {
			chunk = append(chunk, words[r.Intn(len(words))]...)
			chunk = append(chunk, " \n"[r.Intn(2)])
		}
		total += len(chunk)
		s.Write(chunk)
		maxHeld = max(maxHeld, s.Held())
	}
	if maxHeld > 512 {
		t.Fatalf("ordinary text held back %d bytes", maxHeld)
	}
	// Pathological inputs stay within MaxHold.
	for _, unit := range []string{"-----BEGIN RSA PRIVATE KEY-----\n", "1 ", "a", "x.y@x.y", "eyJ"} {
		s := NewStream(set, Partial, nil)
		out := 0
		for i := 0; i < 100; i++ {
			out += len(s.Write([]byte(strings.Repeat(unit, 1+(40<<10)/len(unit)/100))))
			if s.Held() > MaxHold {
				t.Fatalf("%q: held %d > MaxHold", unit, s.Held())
			}
		}
		out += len(s.Flush())
		if out == 0 {
			t.Fatalf("%q: no output", unit)
		}
	}
}

func TestStreamInteractivePrompt(t *testing.T) {
	// A shell prompt is returned at once, not held until more output.
	s := NewStream(allSet(t), Redact, nil)
	if got := string(s.Write([]byte("total 0\nuser@host:~$ "))); got != "total 0\nuser@host:~$ " {
		t.Fatalf("prompt held: %q", got)
	}
}

// checkChunkings holds set to the stream-equals-whole property on in: every
// split in two, 1-byte chunks, and iters random chunkings, under Partial
// (which shows exactly which bytes a span covers).
func checkChunkings(t *testing.T, set *Set, in []byte, r *rand.Rand, iters int) {
	t.Helper()
	want := wholeMask(set, in, Partial, nil)
	for i := 0; i <= len(in); i++ {
		if got := streamMask(set, [][]byte{in[:i], in[i:]}, Partial, nil); !bytes.Equal(got, want) {
			t.Fatalf("split at %d of %q:\n got %q\nwant %q", i, in, got, want)
		}
	}
	var ones [][]byte
	for i := range in {
		ones = append(ones, in[i:i+1])
	}
	if got := streamMask(set, ones, Partial, nil); !bytes.Equal(got, want) {
		t.Fatalf("1-byte chunks of %q:\n got %q\nwant %q", in, got, want)
	}
	for iter := 0; iter < iters; iter++ {
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+r.Intn(1+len(in)/3))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := streamMask(set, chunks, Partial, nil); !bytes.Equal(got, want) {
			t.Fatalf("chunks %d of %q:\n got %q\nwant %q", len(chunks), in, got, want)
		}
	}
}

// streamPieces are fragments around the detectors' edges (issue 18's
// phones, URL passwords, card lists, dashed IBANs, whole tokens); random
// texts made of them stress the stream-equals-whole property.
var streamPieces = []string{
	"+44 20 7946 0958", "+1 (202) 555-0123", "0044 20 7946 0958", "(020) 7946 0958", "+33.1.23.45.67.89",
	"+44 (0)20 7946 0958", "2026-12-07 20:04:05", "192.168.1.20", "1,234.56", "100234567891", "v1.26.8",
	"4111 1111 1111 1111", "5500000000000004", "card", "DE89-3704-0044-0532-0130-00",
	"redis://default:s3cret@cache:6379", "postgres://u:p@ss@db/x", "https://a.b/@c", "Basic dXNlcjpwYXNz",
	"glpat-Zx8Qw2Er4Ty6Ui8Op0As", ".01.0y0b2a1lk", "xoxe.xoxp-1-AbCdEfGhIjKl", "xoxe-1-AbCdEfGhIjKl",
	"github_pat_11ABCDEFG0123456789_abcdef", " ", " ", "-", ".", "(", ")", ":", "@", "+", "00", "7", "\n", "x",
}

func TestStreamRandomPieces(t *testing.T) {
	r := rand.New(rand.NewSource(18))
	gb, err := Phone("GB", "US")
	if err != nil {
		t.Fatal(err)
	}
	var ds []Detector
	for _, n := range Names() {
		if n != KindPhone {
			d, _ := Builtin(n)
			ds = append(ds, d)
		}
	}
	sets := []*Set{allSet(t), NewSet(append(ds, gb)...)}
	for iter := 0; iter < 300; iter++ {
		var b strings.Builder
		for k := 0; k < 4+r.Intn(12); k++ {
			b.WriteString(streamPieces[r.Intn(len(streamPieces))])
		}
		checkChunkings(t, sets[iter%2], []byte(b.String()), r, 5)
	}
}
