package identity_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
)

// BenchmarkTokenVerify measures what the token cache saves on every
// request: a full ES256 verification against a cache hit, in one run.
func BenchmarkTokenVerify(b *testing.B) {
	iss := devIssuer(b)
	tok, err := iss.Mint(identity.MintOptions{Subject: "agent", Claims: map[string]any{"repository": "acme/app"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Timed by hand over a fixed count: testing.Benchmark cannot nest in a
	// benchmark, and `make bench` runs with -benchtime 1x.
	measure := func(cacheSize, n int) float64 {
		v := identity.NewVerifier([]config.Issuer{iss.IssuerConfig()}, cacheSize, identity.Options{})
		if _, err := v.Verify(ctx, tok); err != nil { // discovery and JWKS outside the timing
			b.Fatal(err)
		}
		start := time.Now()
		for range n {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	u := measure(0, 5000)
	c := measure(100, 500000)
	fmt.Printf("BENCH token_verify_uncached %.0f ns/op ratio=1.00 vs uncached\n", u)
	fmt.Printf("BENCH token_verify_cached %.0f ns/op ratio=%.4f vs uncached\n", c, c/u)
	b.ReportMetric(c/u, "cached/uncached")
}
