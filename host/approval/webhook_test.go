package approval_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
)

// receiver is our own webhook endpoint: it keeps what it got, and fails
// the first failFirst posts with a 500.
type receiver struct {
	mu        sync.Mutex
	bodies    [][]byte
	failFirst int
	got       chan struct{}
}

func startReceiver(t *testing.T, failFirst int) (*receiver, string) {
	rc := &receiver{failFirst: failFirst, got: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.failFirst > 0 {
			rc.failFirst--
			w.WriteHeader(500)
			return
		}
		rc.bodies = append(rc.bodies, b)
		rc.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) wait(t *testing.T) []byte {
	t.Helper()
	select {
	case <-rc.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook never arrived")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[len(rc.bodies)-1]
}

// deadURL is a port nothing listens on.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/hook"
}

func TestWebhooks(t *testing.T) {
	slack, slackURL := startReceiver(t, 1) // the first attempt fails: retried
	generic, genericURL := startReceiver(t, 0)
	dead := deadURL(t)
	n := approval.NewNotifier([]approval.Webhook{
		{Group: "dba", URL: slackURL, Format: "slack"},
		{Group: "sre", URL: genericURL, Format: "generic"},
		{Group: "dba", URL: dead, Format: "slack"},
	}, approval.NotifierOptions{Backoff: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}})
	defer n.Shutdown(context.Background())
	m, _ := newManager(t, approval.Options{Notify: n.Notify, URL: func(id string) string { return "https://gw.test/ui/approvals/" + id }})

	req := request("s1", "DELETE FROM orders WHERE note = '<script>'")
	start := time.Now()
	p := hold(t, m, req)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Hold took %v with a dead webhook", d)
	}

	var msg struct{ Text string }
	if err := json.Unmarshal(slack.wait(t), &msg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{agent.Subject, "octocat", "acme/app", "prod-db", "DELETE FROM orders", "&lt;script&gt;", p.URL, "writes need a DBA"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, msg.Text)
		}
	}
	var gen struct {
		Type     string
		Approval approval.Record
	}
	if err := json.Unmarshal(generic.wait(t), &gen); err != nil {
		t.Fatal(err)
	}
	if gen.Type != "approval.pending" || gen.Approval.ID != p.ID || gen.Approval.Fields["sql"] != req.Fields["sql"] {
		t.Fatalf("generic payload %+v", gen)
	}
	// The dead hook is retried and given up, counted, and delayed nothing.
	deadline := time.Now().Add(10 * time.Second)
	for n.Stats().Failed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", n.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := n.Stats(); st.Sent != 2 || st.Retried < 3 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebhookQueueFullDrops(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	n := approval.NewNotifier([]approval.Webhook{{Group: "dba", URL: srv.URL}},
		approval.NotifierOptions{QueueSize: 2, Workers: 1, Timeout: time.Second, Backoff: []time.Duration{}})
	defer n.Shutdown(context.Background())
	start := time.Now()
	for range 10 {
		n.Notify(approval.Record{ID: "x", ApproverGroups: []string{"dba"}})
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Notify blocked for %v", d)
	}
	if st := n.Stats(); st.Dropped < 7 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGenericPayloadHasNoBody(t *testing.T) {
	r := approval.Record{ID: "a1", Body: "card=4111111111111111", Covered: map[string]string{"body.sha256": "abc", "body.length": "21"}}
	b, err := approval.Payload("generic", r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "4111") || !strings.Contains(string(b), `"body.sha256":"abc"`) {
		t.Fatalf("payload %s", b)
	}
}
