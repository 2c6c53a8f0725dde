// Package demo is the upstream the quick start reaches through the gateway:
// a small JSON service that checks the credential the gateway injects and
// echoes the request it saw, so a newcomer can watch the token swap happen.
// It runs only under `gateway serve --dev`.
package demo

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// Echo answers every request with what it received. It requires
// `Authorization: Bearer <token>` with the token the gateway holds for the
// demo target, and never echoes that header's value: the agent must not
// learn the credential by asking the upstream to repeat it.
func Echo(token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "the demo upstream expects the gateway's credential"})
			return
		}
		headers := map[string]string{}
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if k == "Authorization" {
				headers[k] = "Bearer [the gateway's credential, verified by the upstream]"
				continue
			}
			headers[k] = strings.Join(r.Header[k], ", ")
		}
		json.NewEncoder(w).Encode(map[string]any{
			"service": "tollgate demo upstream",
			"method":  r.Method,
			"path":    r.URL.Path,
			"query":   r.URL.RawQuery,
			"headers": headers,
		})
	})
}
