package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/event"
)

// tokens stands in for the OIDC verifier: the admin package's own
// interface, so the tests exercise its gate and nothing else.
type tokens map[string]*event.Principal

func (t tokens) Verify(_ context.Context, raw string) (*event.Principal, error) {
	if p, ok := t[raw]; ok {
		return p, nil
	}
	return nil, errors.New("bad token")
}

func TestGate(t *testing.T) {
	h := New(Options{Auth: tokens{
		"auditor": {Subject: "alice", Groups: []string{"auditors"}},
		"agent":   {Subject: "repo:acme/app", Groups: []string{"ci"}},
	}, Groups: []string{"auditors"}})
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		body                      string
	}{
		{"health needs nothing", "GET", "/healthz", "", 200, "ok"},
		{"no token", "POST", "/v1/audit/query", "", 401, "unauthenticated"},
		{"bad token", "POST", "/v1/audit/query", "forged", 401, "invalid_token"},
		{"agent is not an auditor", "POST", "/v1/audit/query", "agent", 403, "auditors"},
		{"auditor, but the file store is not queryable", "GET", "/v1/audit/rows", "auditor", 404, "no_store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"sql":"SELECT 1"}`))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body.String())
			}
			if tc.status == http.StatusUnauthorized && tc.token == "" && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
