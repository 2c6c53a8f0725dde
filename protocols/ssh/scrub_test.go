package ssh

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// chunks reads b in random pieces.
type chunks struct {
	b   []byte
	rng *rand.Rand
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), 1+c.rng.IntN(12))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// The target's password never reaches the client, raw or in base64,
// however the output is cut; everything else passes unchanged.
func TestScrubReader(t *testing.T) {
	pw := "s3cr3t-Pa55word"
	s := gate.NewScrubber([]string{pw})
	text := "user=deploy password=" + pw + "\nb64:" + base64.RawStdEncoding.EncodeToString([]byte(pw)) +
		"\nalmost: s3cr3t-Pa55wor\n" + pw + pw + "\nend s3cr3t"
	want := []byte(text)
	s.Scrub(want)
	if bytes.Contains(want, []byte(pw)) || !strings.HasSuffix(string(want), "\nend s3cr3t") || !bytes.Contains(want, []byte("almost: s3cr3t-Pa55wor\n")) {
		t.Fatalf("whole: %q", want)
	}
	for seed := range uint64(200) {
		found := 0
		z := s.Reader(&chunks{b: []byte(text), rng: rand.New(rand.NewPCG(seed, 1))}, &found)
		got, err := io.ReadAll(iotest.HalfReader(z))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %d: %q, want %q (%v)", seed, got, want, err)
		}
		if found != 4 {
			t.Fatalf("seed %d: found %d, want 4", seed, found)
		}
	}
}
