package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	xssh "golang.org/x/crypto/ssh"
)

// LoadOrCreateHostKey reads the ed25519 host key at path, generating and
// writing it (mode 0600, directory 0700) when the file does not exist.
func LoadOrCreateHostKey(path string) (xssh.Signer, error) {
	return loadOrCreateKey(path, "tollgate gateway host key", "host key")
}

// LoadOrCreateCAKey is LoadOrCreateHostKey for the user CA's key.
func LoadOrCreateCAKey(path string) (xssh.Signer, error) {
	return loadOrCreateKey(path, "tollgate ssh user ca", "user CA key")
}

func loadOrCreateKey(path, comment, what string) (xssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if b, err = createHostKey(path, comment); errors.Is(err, os.ErrExist) {
			b, err = os.ReadFile(path) // another process made it meanwhile
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ssh: %s %s: %w", what, path, err)
	}
	s, err := xssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ssh: %s %s: %w", what, path, err)
	}
	return s, nil
}

func createHostKey(path, comment string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := xssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(blk)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}
