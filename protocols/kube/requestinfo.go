package kube

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// RequestInfo is what a Kubernetes API request asks for, resolved from its
// method, path and query the way the API server's RequestInfoFactory
// (k8s.io/apiserver/pkg/endpoints/request) resolves it, so that the
// gateway's access rules see what the cluster's RBAC will see.
type RequestInfo struct {
	// IsResourceRequest: the path names an API resource (/api/v1/...,
	// /apis/GROUP/VERSION/...); otherwise it is a non-resource URL
	// (/healthz, /version, /api, /apis/GROUP/VERSION) and only Path and
	// Verb (the method in lower case) are set.
	IsResourceRequest bool
	Path              string
	// Verb is the RBAC verb: get, list, watch, create, update, patch,
	// delete, deletecollection, proxy; for a non-resource URL the method
	// in lower case.
	Verb string

	APIPrefix   string // "api" or "apis"
	APIGroup    string // "" for the core group
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// Parts are the path's segments from the resource on.
	Parts []string
}

// Errors of ParseRequestInfo: the gateway refuses such a request rather
// than guess what the API server would make of it.
var (
	// ErrUnresolvable is the API server's own refusal: a special verb
	// (watch, proxy) with nothing after it.
	ErrUnresolvable = errors.New("unable to determine kind and namespace from url")
	// ErrNonCanonicalPath is a path that the gateway and a server might
	// read differently: an empty, "." or ".." segment, or a percent-encoded
	// character that decodes to something else (an encoded slash).
	ErrNonCanonicalPath = errors.New("path is not canonical")
)

// specialVerbs are path prefixes that carry the verb (deprecated in the
// API but still served); proxy takes no subresource.
const (
	verbWatch = "watch"
	verbProxy = "proxy"
)

// ParseRequestInfo resolves a request. u is the request's URL as the
// gateway received it (path and raw query).
func ParseRequestInfo(method string, u *url.URL) (RequestInfo, error) {
	ri := RequestInfo{Path: u.Path, Verb: strings.ToLower(method)}
	if err := canonical(u); err != nil {
		return ri, err
	}
	parts := splitPath(u.Path)
	if len(parts) < 3 || (parts[0] != "api" && parts[0] != "apis") {
		return ri, nil
	}
	ri.APIPrefix = parts[0]
	parts = parts[1:]
	if ri.APIPrefix == "apis" {
		// /apis/GROUP/VERSION alone is discovery, not a resource.
		if len(parts) < 3 {
			return ri, nil
		}
		ri.APIGroup = parts[0]
		parts = parts[1:]
	}
	ri.IsResourceRequest = true
	ri.APIVersion = parts[0]
	parts = parts[1:]

	if parts[0] == verbWatch || parts[0] == verbProxy {
		if len(parts) < 2 {
			return ri, ErrUnresolvable
		}
		ri.Verb = parts[0]
		parts = parts[1:]
	} else {
		switch method {
		case http.MethodPost:
			ri.Verb = "create"
		case http.MethodGet, http.MethodHead:
			ri.Verb = "get"
		case http.MethodPut:
			ri.Verb = "update"
		case http.MethodPatch:
			ri.Verb = "patch"
		case http.MethodDelete:
			ri.Verb = "delete"
		default:
			ri.Verb = ""
		}
	}

	// /namespaces/NS/RESOURCE/... is relative to the resource, except the
	// namespace's own subresources (status, finalize).
	if parts[0] == "namespaces" && len(parts) > 1 {
		ri.Namespace = parts[1]
		if len(parts) > 2 && parts[2] != "status" && parts[2] != "finalize" {
			parts = parts[2:]
		}
	}
	ri.Parts = parts
	switch {
	case len(parts) >= 3 && ri.Verb != verbProxy:
		ri.Subresource = parts[2]
		fallthrough
	case len(parts) >= 2:
		ri.Name = parts[1]
		fallthrough
	case len(parts) >= 1:
		ri.Resource = parts[0]
	}

	if ri.Name == "" && ri.Verb == "get" {
		q, err := url.ParseQuery(u.RawQuery)
		ri.Verb = "list"
		if watching(q["watch"]) {
			ri.Verb = "watch"
		}
		// A list narrowed to one object by name counts as a request for
		// it (the API server's RBAC grants it with resourceNames). An
		// unreadable query leaves the name out, as the server does.
		if err == nil {
			if vals := q["fieldSelector"]; len(vals) > 0 {
				if name, ok := exactName(vals[0]); ok {
					ri.Name = name
				}
			}
		}
	}
	if ri.Name == "" && ri.Verb == "delete" {
		ri.Verb = "deletecollection"
	}
	return ri, nil
}

// watching is the API server's reading of the watch parameter: anything
// but "0" and "false" (any case) turns a list into a watch.
func watching(vals []string) bool {
	if len(vals) == 0 {
		return false
	}
	return vals[0] != "0" && !strings.EqualFold(vals[0], "false")
}

// splitPath splits a path into its segments, without the slashes at
// either end.
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// canonical refuses a path whose segments a server could read otherwise
// than the gateway: an empty segment (only a trailing slash is allowed),
// a "." or ".." segment, or an escaped form that is not the plain one.
func canonical(u *url.URL) error {
	if u.Opaque != "" || (u.RawPath != "" && u.RawPath != u.Path) {
		return ErrNonCanonicalPath
	}
	if !strings.HasPrefix(u.Path, "/") {
		return ErrNonCanonicalPath
	}
	p := strings.TrimSuffix(u.Path[1:], "/")
	if p == "" {
		return nil
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return ErrNonCanonicalPath
		}
	}
	return nil
}

// exactName is the value a field selector requires of metadata.name
// ("metadata.name=web", "metadata.name==web", among other terms), when
// it is a valid path segment name; the selector's escapes (\, \= \\)
// are honoured and a malformed selector gives none.
func exactName(sel string) (string, bool) {
	terms, ok := splitTerms(sel)
	if !ok {
		return "", false
	}
	for _, term := range terms {
		if term == "" {
			continue
		}
		field, op, value, ok := splitTerm(term)
		if !ok {
			return "", false
		}
		if field != "metadata.name" || op == "!=" {
			continue
		}
		v, ok := unescapeSelector(value)
		if !ok || !pathSegmentName(v) {
			return "", false
		}
		return v, true
	}
	return "", false
}

// splitTerms splits a field selector on its unescaped commas.
func splitTerms(sel string) ([]string, bool) {
	var terms []string
	start, escaped := 0, false
	for i := 0; i < len(sel); i++ {
		switch {
		case escaped:
			escaped = false
		case sel[i] == '\\':
			escaped = true
		case sel[i] == ',':
			terms = append(terms, sel[start:i])
			start = i + 1
		}
	}
	if escaped {
		return nil, false
	}
	return append(terms, sel[start:]), true
}

// splitTerm splits one term at its first unescaped operator.
func splitTerm(term string) (field, op, value string, ok bool) {
	for i := 0; i < len(term); i++ {
		if term[i] == '\\' {
			i++
			continue
		}
		for _, o := range []string{"!=", "==", "="} {
			if strings.HasPrefix(term[i:], o) {
				return term[:i], o, term[i+len(o):], true
			}
		}
	}
	return "", "", "", false
}

// unescapeSelector undoes a field selector value's escapes; an unknown
// escape or an unescaped operator character makes it invalid.
func unescapeSelector(v string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' {
			if i+1 >= len(v) {
				return "", false
			}
			i++
			switch v[i] {
			case '\\', ',', '=':
				b.WriteByte(v[i])
			default:
				return "", false
			}
			continue
		}
		if c == ',' || c == '=' {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// pathSegmentName is the API server's rule for a name that can stand in a
// path: not "." or "..", no "/" and no "%".
func pathSegmentName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/%")
}
