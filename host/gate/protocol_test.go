package gate_test

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/gate"
)

func TestNewServiceRefusesAnUnknownProtocol(t *testing.T) {
	_, err := gate.NewService(gate.Listener{Name: "x", Protocol: "gopher"}, nil, gate.Deps{})
	if err == nil || !strings.Contains(err.Error(), `gate: listener x: unknown protocol "gopher"`) {
		t.Fatalf("NewService = %v", err)
	}
}

func TestRegisterNeedsAConstructor(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "without New") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	gate.Register(gate.Protocol{Name: "incomplete", NewListener: func() gate.Options { return nil }})
}
