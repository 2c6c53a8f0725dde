package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Seen is a request as the upstream received it.
type Seen struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Upstream is a real HTTP server on loopback that records every request
// and answers with a small JSON document, as an internal service would.
type Upstream struct {
	URL string

	mu   sync.Mutex
	seen []Seen
	srv  *httptest.Server
}

// StartUpstream starts an upstream; handler may be nil for the default
// JSON answer. The server stops when the test ends.
func StartUpstream(t testing.TB, handler http.HandlerFunc) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, Seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		u.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "path": r.URL.Path, "items": []int{1, 2, 3}})
	}))
	u.URL = u.srv.URL
	t.Cleanup(u.srv.Close)
	return u
}

// Seen returns the requests received so far.
func (u *Upstream) Seen() []Seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Seen(nil), u.seen...)
}
