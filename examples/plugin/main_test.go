package main_test

import (
	"context"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/host/plugin/plugintool"
)

// The sample event in event.json is denied by the sample config.
func TestSampleEvent(t *testing.T) {
	wasm, err := plugintool.Build(".", t.TempDir()+"/blocker.wasm")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := os.ReadFile(wasm)
	cfg, _ := os.ReadFile("config.toml")
	ev, _ := os.ReadFile("event.json")
	r, err := plugintool.Run(context.Background(), code, cfg, ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != "deny" || r.Annotations["blocker.blocked"] != "/admin" {
		t.Fatalf("result: %+v", r)
	}
}
