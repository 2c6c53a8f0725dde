package http

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// A synced answer of known length keeps its last byte until release, in
// whatever pieces the body is written; an answer of unknown length is
// written through (its end is the handler's return).
func TestHeldWriteKeepsTheLastByte(t *testing.T) {
	for _, pieces := range [][]string{{"hello world"}, {"hello", " wor", "ld"}, {"hello worl", "d"}} {
		w := httptest.NewRecorder()
		s := &statusRecorder{ResponseWriter: w}
		s.holdEnd()
		s.Header().Set("Content-Length", "11")
		s.WriteHeader(http.StatusOK)
		for _, p := range pieces {
			if n, err := s.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("%q: Write(%q) = %d, %v", pieces, p, n, err)
			}
		}
		if got := w.Body.String(); got != "hello worl" {
			t.Fatalf("%q: before release the client has %q, want all but the last byte", pieces, got)
		}
		if s.bytes != 11 {
			t.Fatalf("%q: %d bytes counted for the row, want 11", pieces, s.bytes)
		}
		s.release()
		if got := w.Body.String(); got != "hello world" {
			t.Fatalf("%q: after release the client has %q", pieces, got)
		}
	}
	w := httptest.NewRecorder()
	s := &statusRecorder{ResponseWriter: w}
	s.holdEnd()
	s.Write([]byte("chunked"))
	if w.Body.String() != "chunked" {
		t.Fatalf("unknown length: %q written, want all of it", w.Body.String())
	}
}
