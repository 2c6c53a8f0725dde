package audit

import "testing"

// IsID takes what FormatID writes and refuses anything else of that length.
func TestIsID(t *testing.T) {
	for i := 0; i < 100; i++ {
		if id := NewID(); !IsID(id) {
			t.Fatalf("IsID(%q) = false for a NewID", id)
		}
	}
	for _, s := range []string{"", "0f6c3a52-2f59-4f4e-9d8e-3c8c1e0a4b2", "0f6c3a52x2f59-4f4e-9d8e-3c8c1e0a4b21", "0f6c3a52-2f59-4f4e-9d8e-3c8c1e0a4b2g", "' OR 1=1 --                         "} {
		if IsID(s) {
			t.Errorf("IsID(%q) = true", s)
		}
	}
	if !IsID("0F6C3A52-2F59-4F4E-9D8E-3C8C1E0A4B21") {
		t.Error("upper case refused")
	}
}
