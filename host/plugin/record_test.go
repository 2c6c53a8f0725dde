package plugin

import "testing"

// A record-only mask also searches the value percent-decoded.
func TestPercentDecoded(t *testing.T) {
	for in, want := range map[string]string{
		"a%5Fb":       "a_b",
		"a%255Fb":     "a_b",
		"a%25255Fb":   "a_b",
		"a%2525255Fb": "a%5Fb", // three layers, no more
		"%zz%5":       "%zz%5",
		"a+b%2Bc":     "a+b+c",
		"100%":        "100%",
		"":            "",
	} {
		if got := percentDecoded(in); got != want {
			t.Errorf("percentDecoded(%q) = %q, want %q", in, got, want)
		}
	}
}
