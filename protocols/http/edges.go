package http

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// queryTokenNames are the parameters that carry a token by convention
// (RFC 6750 section 2.3, OpenID Connect). The gateway authenticates from
// the Authorization header only, so a token in the query is never needed,
// and a query string ends up in upstream access logs and in the audit
// trail.
var queryTokenNames = []string{"access_token", "id_token"}

// stripQueryTokens removes from raw every parameter named like a token,
// whose value is a JWT, or whose value is the agent's bearer token. The
// other parameters keep their order and their exact encoding. It returns
// the new query and the names removed.
func stripQueryTokens(raw, bearer string) (string, []string) {
	if raw == "" {
		return raw, nil
	}
	var removed []string
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, part := range parts {
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			val = v
		}
		if slices.Contains(queryTokenNames, strings.ToLower(name)) || looksLikeJWT(val) || (bearer != "" && strings.Contains(val, bearer)) {
			removed = append(removed, name)
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&"), removed
}

// looksLikeJWT is true for a compact JWS or JWE: a base64url JSON header
// ("eyJ" is `{"`) and two or four more dot-separated parts.
func looksLikeJWT(v string) bool {
	v = strings.TrimPrefix(strings.TrimSpace(v), "Bearer ")
	if !strings.HasPrefix(v, "eyJ") {
		return false
	}
	n := strings.Count(v, ".")
	return n == 2 || n == 4
}

// bearerOf is the token of an Authorization: Bearer header, or "".
func bearerOf(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// refusedUpgrade returns the first protocol in the request's Upgrade
// header that the target does not allow, or "". Go's server would pass
// h2c (or anything else) to the handler, and ReverseProxy would tunnel
// whatever the upstream agrees to, out of the chain's sight.
func refusedUpgrade(h http.Header, allowed []string) string {
	for _, line := range h.Values("Upgrade") {
		for p := range strings.SplitSeq(line, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "/") // websocket/13: the name decides
			if !slices.Contains(allowed, strings.ToLower(name)) {
				return p
			}
		}
	}
	return ""
}
