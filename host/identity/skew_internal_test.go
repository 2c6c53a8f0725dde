package identity

import (
	"testing"
	"time"
)

// With clock_skew = "0s" a token is refused the second after it expires.
func TestZeroClockSkew(t *testing.T) {
	now := time.Now()
	claims := map[string]any{"exp": float64(now.Add(-2 * time.Second).Unix())}
	if _, err := checkTimes(claims, now, 0); err == nil {
		t.Fatal("a token expired 2s ago was accepted with no clock skew")
	}
	if _, err := checkTimes(claims, now, 5*time.Second); err != nil {
		t.Fatalf("within a 5s skew: %v", err)
	}
}
