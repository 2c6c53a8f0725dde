package plugin

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

func TestNew(t *testing.T) {
	c, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Process(context.Background(), &event.Event{Kind: "http.request"})
	if err != nil || v.Action != event.Allow {
		t.Fatalf("empty chain: %+v %v", v, err)
	}
	if _, err := New([]config.Plugin{{Name: "mask", Path: "mask.wasm"}}); !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("configured plugins without a runtime: %v", err)
	}
}
