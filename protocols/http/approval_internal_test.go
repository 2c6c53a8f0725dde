package http

import (
	"slices"
	"testing"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/event"
)

// The reviewer sees the request as it will run: the rewrites the chain
// made before the hold, and which fields they were; a rewrite the gateway
// never applies (the Authorization header) is neither shown nor listed.
func TestHeldFields(t *testing.T) {
	ev := &event.Event{Kind: "http.request", Fields: map[string]string{"method": "POST", "path": "/a", "query": "card=4111111111111111"}}
	f, changed := approval.Rewritten(ev.Fields, map[string]string{
		"query": "card=****1111", "path": "/a", "header.Authorization": "Bearer stolen", "header.X-Masked": "yes", "method": "DELETE",
	}, acceptedChange)
	if f["query"] != "card=****1111" || f["header.X-Masked"] != "yes" || f["method"] != "POST" || f["header.Authorization"] != "" {
		t.Fatalf("fields %v", f)
	}
	if !slices.Equal(changed, []string{"header.X-Masked", "query"}) {
		t.Fatalf("changed %v", changed)
	}
	if ev.Fields["query"] != "card=4111111111111111" {
		t.Fatal("Rewritten changed the event")
	}
}
