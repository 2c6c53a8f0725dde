package http

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/gate"
)

func testScrubber(t testing.TB) *gate.Scrubber {
	t.Helper()
	// Secrets are references; resolve one the way the gateway does.
	t.Setenv("SCRUB_TEST_PW", "pw-0123456789")
	c, err := config.Parse("gateway.toml", []byte(`
[[targets]]
name = "api"
protocol = "http"
upstream = "http://127.0.0.1:9000"
[targets.credential]
type = "basic"
username = "svc"
password = "env:SCRUB_TEST_PW"
[[listeners]]
name = "http"
protocol = "http"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveSecrets(); err != nil {
		t.Fatal(err)
	}
	return newScrubber(c.Targets[0].Credential)
}

// chunked reads r in pieces of the given sizes, cycling.
type chunked struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	return c.r.Read(p[:min(n, len(p))])
}

func TestScrubReaderCatchesSplitMatches(t *testing.T) {
	s := testScrubber(t)
	b64 := base64.StdEncoding.EncodeToString([]byte("svc:pw-0123456789"))
	in := "a pw-0123456789 b " + b64 + " c pw-01234 not a match pw-0123456789"
	want := "a ************* b " + strings.Repeat("*", len(b64)-1) + "= c pw-01234 not a match *************"
	for size := 1; size <= len(in); size++ {
		found := 0
		z := s.Reader(io.NopCloser(&chunked{r: strings.NewReader(in), sizes: []int{size}}), &found)
		got, err := io.ReadAll(iotest.OneByteReader(z))
		if err != nil || string(got) != want || found != 3 {
			t.Fatalf("chunks of %d: got %q (%d found, %v)", size, got, found, err)
		}
	}
}

func TestScrubReaderDoesNotHoldPlainText(t *testing.T) {
	s := testScrubber(t)
	found := 0
	pr, pw := io.Pipe()
	z := s.Reader(pr, &found)
	go pw.Write([]byte("data: event\n\n"))
	buf := make([]byte, 64)
	n, err := z.Read(buf)
	if err != nil || string(buf[:n]) != "data: event\n\n" {
		t.Fatalf("read %q, %v: an event with nothing like the secret must go out at once", buf[:n], err)
	}
	pw.Close()
}

func FuzzScrubReader(f *testing.F) {
	f.Add([]byte("xx pw-0123456789 yy"), uint8(3))
	f.Add([]byte("pw-012pw-0123456789"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		s := testScrubber(t)
		whole := bytes.Clone(in)
		n := s.Scrub(whole)
		found := 0
		z := s.Reader(io.NopCloser(&chunked{r: bytes.NewReader(in), sizes: []int{int(size%17) + 1}}), &found)
		got, err := io.ReadAll(z)
		if err != nil || !bytes.Equal(got, whole) || found != n {
			t.Fatalf("streamed %q (%d) != whole %q (%d)", got, found, whole, n)
		}
	})
}
