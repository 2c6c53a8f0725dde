//go:build unix

package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestRequestInfoMatchesAPIServer sends every path of the table to a real
// API server and compares ParseRequestInfo with the server's own
// resolution, as its audit log records it (verb and objectRef). The
// requests go as the gateway's user, whose role reads but never writes:
// the writes are refused, and still resolved and logged.
func TestRequestInfoMatchesAPIServer(t *testing.T) {
	k := testenv.StartKube(t)
	c := k.Client()
	c.Timeout = 0
	var wg sync.WaitGroup
	for i, tc := range requestInfoCases {
		u := fmt.Sprintf("%s%s", k.URL, tc.url)
		if strings.Contains(u, "?") {
			u += fmt.Sprintf("&tollgate-case=%d", i)
		} else {
			u += fmt.Sprintf("?tollgate-case=%d", i)
		}
		// A watch stays open: the audit log has it once the response
		// starts, so the request is cut after a while.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, err := http.NewRequestWithContext(ctx, tc.method, u, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+k.GatewayToken)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	for i, tc := range requestInfoCases {
		marker := fmt.Sprintf("tollgate-case=%d", i)
		e := k.WaitAudit(t, func(e testenv.KubeAuditEntry) bool {
			q, err := url.ParseRequestURI(e.RequestURI)
			return err == nil && strings.Contains("&"+q.RawQuery+"&", "&"+marker+"&")
		})
		u, _ := url.ParseRequestURI(tc.url)
		ri, err := ParseRequestInfo(tc.method, u)
		if err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.url, err)
			continue
		}
		if e.Verb != ri.Verb {
			t.Errorf("%s %s: verb %q, the API server's %q", tc.method, tc.url, ri.Verb, e.Verb)
		}
		if !ri.IsResourceRequest {
			if e.ObjectRef != nil {
				t.Errorf("%s %s: a non-resource URL to the gateway, a resource to the API server: %+v", tc.method, tc.url, *e.ObjectRef)
			}
			continue
		}
		if e.ObjectRef == nil {
			t.Errorf("%s %s: a resource to the gateway (%+v), not to the API server", tc.method, tc.url, ri)
			continue
		}
		got := [6]string{ri.APIGroup, ri.APIVersion, ri.Namespace, ri.Resource, ri.Subresource, ri.Name}
		o := e.ObjectRef
		want := [6]string{o.APIGroup, o.APIVersion, o.Namespace, o.Resource, o.Subresource, o.Name}
		if got != want {
			t.Errorf("%s %s: group, version, namespace, resource, subresource, name\n gateway %q\nAPI server %q", tc.method, tc.url, got, want)
		}
	}
}
