// Package plugin runs the chain of WebAssembly plugins every event passes
// through: it loads modules built with the SDK (sdk/ABI.md), pools their
// instances, offers them host-side pattern matching and masking, and
// contains their failures.
package plugin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Empty is the chain with no plugins: every event is allowed unchanged.
type Empty struct{}

var _ event.Chain = Empty{}

func (Empty) Process(context.Context, *event.Event) (event.Verdict, error) {
	return event.Verdict{Action: event.Allow}, nil
}

// Wants is false for every kind.
func (Empty) Wants(string) bool { return false }

// MaskKeyPath is where the hash strategy's key is kept when gateway.toml
// does not name one.
func MaskKeyPath(dataDir string) string { return filepath.Join(dataDir, "mask-key") }

// LoadOrCreateKey reads a 32-byte key, creating it on first use, so that
// hashed values stay comparable across restarts.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 16 {
			return nil, fmt.Errorf("plugin: mask key %s is too short", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("plugin: mask key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("plugin: mask key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin: mask key: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(key); err != nil {
		return nil, fmt.Errorf("plugin: mask key: %w", err)
	}
	return key, f.Sync()
}
