package demo

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEchoChecksAndHidesTheCredential(t *testing.T) {
	h := Echo("the-real-credential")
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401},
		{"Bearer guess", 401},
		{"Bearer the-real-credential", 200},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/hello?x=1", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Fatalf("%q: status %d, want %d", tc.auth, rec.Code, tc.want)
		}
		if strings.Contains(rec.Body.String(), "the-real-credential") {
			t.Fatal("the demo upstream echoed the credential")
		}
	}
}
