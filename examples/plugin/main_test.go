package main_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/sdk/sdktest"
)

// The plugin runs in the gateway's own plugin host (sdktest drives
// `gateway plugin build` and `gateway plugin test`): a blocked path is denied,
// any other passes.
func TestBlockedPaths(t *testing.T) {
	wasm := sdktest.Build(t, ".")
	cfg, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/admin/users", "deny"},
		{"/admin", "deny"},
		{"/orders/42", "allow"},
		{"/", "allow"},
	} {
		r := sdktest.Run(t, wasm, string(cfg), sampleEvent(t, tc.path))
		if r.Action != tc.want {
			t.Errorf("GET %s: %s (%s), want %s", tc.path, r.Action, r.Reason, tc.want)
		}
	}
	// Without a config nothing is blocked.
	if r := sdktest.Run(t, wasm, "", sampleEvent(t, "/admin")); r.Action != "allow" {
		t.Errorf("no config: %s (%s), want allow", r.Action, r.Reason)
	}
}

// sampleEvent is event.json with another path.
func sampleEvent(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["fields"].(map[string]any)["path"] = path
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
