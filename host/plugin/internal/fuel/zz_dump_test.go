package fuel

import (
	"os"
	"testing"
)

// Temporary: writes the rewritten guest for inspection.
func TestZZDump(t *testing.T) {
	out := os.Getenv("FUEL_DUMP")
	if out == "" {
		t.Skip()
	}
	if err := os.WriteFile(out, mustRewrite(t, goGuest(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".spin", mustRewrite(t, fixture(t, "spin")), 0o644); err != nil {
		t.Fatal(err)
	}
}
