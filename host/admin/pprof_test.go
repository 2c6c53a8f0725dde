package admin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPProfOffByDefault(t *testing.T) {
	h := New(Options{Auth: tokens{"auditor": {Subject: "alice", Groups: []string{"auditors"}}}, Groups: []string{"auditors"}})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline"} {
		rec := serve(h, path, "auditor")
		if rec.Code != http.StatusNotFound {
			t.Errorf("pprof off: GET %s = %d, want 404", path, rec.Code)
		}
	}
}

func TestPProfGuarded(t *testing.T) {
	h := New(Options{PProf: true, Groups: []string{"auditors"}, Auth: tokens{
		"auditor": {Subject: "alice", Groups: []string{"auditors"}},
		"agent":   {Subject: "repo:acme/app", Groups: []string{"ci"}},
	}})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/allocs", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1", "/debug/pprof/symbol"} {
		for _, tc := range []struct {
			token  string
			status int
		}{{"", 401}, {"forged", 401}, {"agent", 403}} {
			if rec := serve(h, path, tc.token); rec.Code != tc.status || bytes.Contains(rec.Body.Bytes(), []byte("goroutine")) {
				t.Errorf("GET %s with token %q: %d, want %d and no profile:\n%.200s", path, tc.token, rec.Code, tc.status, rec.Body.String())
			}
		}
	}
	// The admin group gets the profiles: the index lists them, a heap
	// profile is pprof's gzipped protobuf, a goroutine dump is text.
	if rec := serve(h, "/debug/pprof/", "auditor"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "heap") {
		t.Fatalf("index: %d %.300s", rec.Code, rec.Body.String())
	}
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/allocs"} {
		if rec := serve(h, path, "auditor"); rec.Code != 200 || !bytes.HasPrefix(rec.Body.Bytes(), []byte{0x1f, 0x8b}) {
			t.Fatalf("%s: %d, %d bytes, want a gzipped profile", path, rec.Code, rec.Body.Len())
		}
	}
	if rec := serve(h, "/debug/pprof/goroutine?debug=1", "auditor"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine profile") {
		t.Fatalf("goroutine: %d %.300s", rec.Code, rec.Body.String())
	}
	// The process's arguments are not served, to anyone.
	if rec := serve(h, "/debug/pprof/cmdline", "auditor"); rec.Code != http.StatusNotFound {
		t.Fatalf("cmdline: %d, want 404", rec.Code)
	}
}

func serve(h http.Handler, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
