package kube

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Real paths kubectl and client-go send, with what the API server's
// RequestInfoFactory makes of them (its own test table, extended).
var requestInfoCases = []struct {
	method, url string
	want        RequestInfo // Path and Parts are not compared
}{
	{"GET", "/api", RequestInfo{Verb: "get"}},
	{"GET", "/api/v1", RequestInfo{Verb: "get"}},
	{"GET", "/apis", RequestInfo{Verb: "get"}},
	{"GET", "/apis/apps/v1", RequestInfo{Verb: "get", APIPrefix: "apis"}}, // the server sets the prefix too
	{"GET", "/healthz", RequestInfo{Verb: "get"}},
	{"GET", "/openapi/v3/apis/apps/v1", RequestInfo{Verb: "get"}},
	{"POST", "/version", RequestInfo{Verb: "post"}},
	{"GET", "/other/v1/namespaces/default/pods", RequestInfo{Verb: "get"}},
	{"GET", "/api/v1/namespaces", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Resource: "namespaces"}},
	{"GET", "/api/v1/namespaces/default", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "namespaces", Name: "default"}},
	{"PUT", "/api/v1/namespaces/default/status", RequestInfo{IsResourceRequest: true, Verb: "update", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "namespaces", Name: "default", Subresource: "status"}},
	{"PUT", "/api/v1/namespaces/default/finalize", RequestInfo{IsResourceRequest: true, Verb: "update", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "namespaces", Name: "default", Subresource: "finalize"}},
	{"GET", "/api/v1/namespaces/default/pods", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
	{"GET", "/api/v1/namespaces/default/pods?limit=500", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
	{"HEAD", "/api/v1/namespaces/default/pods/web", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"GET", "/api/v1/namespaces/default/pods/web/", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"GET", "/api/v1/namespaces/default/pods/web/log?follow=true&container=c", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web", Subresource: "log"}},
	{"GET", "/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&tty=true", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web", Subresource: "exec"}},
	{"POST", "/api/v1/namespaces/default/pods/web/exec?command=ls", RequestInfo{IsResourceRequest: true, Verb: "create", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web", Subresource: "exec"}},
	{"POST", "/api/v1/namespaces/default/pods/web/portforward", RequestInfo{IsResourceRequest: true, Verb: "create", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web", Subresource: "portforward"}},
	{"POST", "/api/v1/namespaces/default/pods", RequestInfo{IsResourceRequest: true, Verb: "create", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
	{"PATCH", "/api/v1/namespaces/default/pods/web", RequestInfo{IsResourceRequest: true, Verb: "patch", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"DELETE", "/api/v1/namespaces/default/pods/web", RequestInfo{IsResourceRequest: true, Verb: "delete", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"DELETE", "/api/v1/namespaces/default/pods", RequestInfo{IsResourceRequest: true, Verb: "deletecollection", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
	{"GET", "/api/v1/pods", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/pods?watch=true&resourceVersion=10", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/pods?watch=1", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/pods?watch=", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/pods?watch=FALSE", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/pods?watch=0", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	{"GET", "/api/v1/watch/namespaces/default/pods", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
	{"GET", "/api/v1/watch/namespaces/default/pods/web", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Dtoken", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "secrets", Name: "token"}},
	{"GET", "/api/v1/namespaces/default/secrets?fieldSelector=type%3Dx,metadata.name%3D%3Dtoken&watch=true", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "secrets", Name: "token"}},
	{"GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%21%3Dtoken", RequestInfo{IsResourceRequest: true, Verb: "list", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "secrets"}},
	{"GET", "/api/v1/proxy/namespaces/default/pods/web/metrics/x", RequestInfo{IsResourceRequest: true, Verb: "proxy", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "web"}},
	{"GET", "/api/v1/namespaces/default/services/web:80/proxy/a/b", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "default", Resource: "services", Name: "web:80", Subresource: "proxy"}},
	{"GET", "/api/v1/nodes/n1/proxy/configz", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Resource: "nodes", Name: "n1", Subresource: "proxy"}},
	{"GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "apis", APIGroup: "apps", APIVersion: "v1", Namespace: "default", Resource: "deployments", Name: "web", Subresource: "scale"}},
	{"GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:admin", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "apis", APIGroup: "rbac.authorization.k8s.io", APIVersion: "v1", Resource: "clusterroles", Name: "system:admin"}},
	{"POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", RequestInfo{IsResourceRequest: true, Verb: "create", APIPrefix: "apis", APIGroup: "authentication.k8s.io", APIVersion: "v1", Resource: "selfsubjectreviews"}},
	{"GET", "/apis/apps/v1/watch/deployments", RequestInfo{IsResourceRequest: true, Verb: "watch", APIPrefix: "apis", APIGroup: "apps", APIVersion: "v1", Resource: "deployments"}},
	{"OPTIONS", "/api/v1/pods", RequestInfo{IsResourceRequest: true, Verb: "", APIPrefix: "api", APIVersion: "v1", Resource: "pods"}},
	// A namespace without anything after it is the namespace object.
	{"GET", "/api/v1/namespaces/kube-system/", RequestInfo{IsResourceRequest: true, Verb: "get", APIPrefix: "api", APIVersion: "v1", Namespace: "kube-system", Resource: "namespaces", Name: "kube-system"}},
}

func TestParseRequestInfo(t *testing.T) {
	for _, c := range requestInfoCases {
		u, err := url.ParseRequestURI(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		got, err := ParseRequestInfo(c.method, u)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.url, err)
			continue
		}
		if got.Path != u.Path {
			t.Errorf("%s %s: Path %q", c.method, c.url, got.Path)
		}
		got.Path, got.Parts = "", nil
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", c.method, c.url, got, c.want)
		}
	}
}

// Paths the gateway refuses: the API server's own refusal, and paths a
// hostile client could use to make the gateway and the server disagree
// on the namespace or resource.
func TestParseRequestInfoRefuses(t *testing.T) {
	for _, c := range []struct {
		url  string
		want error
	}{
		{"/api/v1/watch", ErrUnresolvable},
		{"/apis/apps/v1/proxy", ErrUnresolvable},
		{"/api/v1/namespaces/allowed/../secret/secrets", ErrNonCanonicalPath},
		{"/api/v1/namespaces/allowed/./pods", ErrNonCanonicalPath},
		{"/api/v1/namespaces//pods", ErrNonCanonicalPath},
		{"//api/v1/pods", ErrNonCanonicalPath},
		{"/api/v1/namespaces/allowed%2F..%2Fsecret/pods", ErrNonCanonicalPath},
		{"/api/v1/namespaces/a%2Fb/pods", ErrNonCanonicalPath},
	} {
		u, err := url.ParseRequestURI(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if _, err := ParseRequestInfo(http.MethodGet, u); err != c.want {
			t.Errorf("%s: error %v, want %v", c.url, err, c.want)
		}
	}
}

// FuzzParseRequestInfo: no input panics, and what is accepted keeps the
// invariants the access rules rely on.
func FuzzParseRequestInfo(f *testing.F) {
	for _, c := range requestInfoCases {
		f.Add(c.method, c.url)
	}
	f.Add("GET", "/api/v1/namespaces/a/../b/pods")
	f.Add("GET", "/api/v1/namespaces/a%2Fb/pods?fieldSelector=metadata.name%3D%5C%2C")
	f.Fuzz(func(t *testing.T, method, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		ri, err := ParseRequestInfo(method, u)
		if err != nil {
			return
		}
		for _, s := range []string{ri.APIGroup, ri.APIVersion, ri.Namespace, ri.Resource, ri.Subresource, ri.Name} {
			if strings.Contains(s, "/") || s == "." || s == ".." {
				t.Fatalf("%q: segment %q in %+v", raw, s, ri)
			}
		}
		if ri.IsResourceRequest {
			if ri.APIVersion == "" || ri.Resource == "" {
				t.Fatalf("%q: resource request without version or resource: %+v", raw, ri)
			}
			if ri.APIPrefix == "api" && ri.APIGroup != "" {
				t.Fatalf("%q: core path with a group: %+v", raw, ri)
			}
		} else if ri.Verb != strings.ToLower(method) {
			t.Fatalf("%q: non-resource verb %q for method %q", raw, ri.Verb, method)
		}
	})
}
