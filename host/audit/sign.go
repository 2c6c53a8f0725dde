package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Signing wraps a recorder so that every row that closes a chain (a
// session-close row, an approval decision) carries an
// Ed25519 signature over its hash, which covers the session's whole chain:
// someone who can rewrite the audit store but does not hold the key cannot
// forge a session.
func Signing(rec Recorder, key ed25519.PrivateKey) Recorder {
	s := &signing{Recorder: rec, key: key}
	if a, ok := rec.(Admitter); ok {
		return &admittingSigning{s, a}
	}
	return s
}

type signing struct {
	Recorder
	key ed25519.PrivateKey
}

func (s *signing) Record(r Row) error {
	return s.Recorder.Record(s.sign(r))
}

func (s *signing) sign(r Row) Row {
	if Closes(r.Kind) && r.RowHash != "" {
		r.Signature = hex.EncodeToString(ed25519.Sign(s.key, []byte(r.RowHash)))
	}
	return r
}

// RecordTicket and WaitDurable pass synced rows through (durable.go).
func (s *signing) RecordTicket(r Row) (Ticket, error) {
	return RecordTicket(s.Recorder, s.sign(r), true)
}

func (s *signing) WaitDurable(ctx context.Context, t Ticket) error {
	return waitOn(ctx, s.Recorder, t)
}

type admittingSigning struct {
	*signing
	a Admitter
}

func (s *admittingSigning) Admit() error { return s.a.Admit() }

// ParseSigningKey reads a PKCS#8 PEM Ed25519 private key.
func ParseSigningKey(pemText []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(pemText)
	if b == nil {
		return nil, errors.New("audit: signing key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("audit: signing key: not an Ed25519 key")
	}
	return ek, nil
}

// ParsePublicKey reads a PKIX PEM Ed25519 public key (or derives it from a
// private key PEM).
func ParsePublicKey(pemText []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(pemText)
	if b == nil {
		return nil, errors.New("audit: public key: no PEM block")
	}
	if k, err := x509.ParsePKIXPublicKey(b.Bytes); err == nil {
		if ek, ok := k.(ed25519.PublicKey); ok {
			return ek, nil
		}
		return nil, errors.New("audit: public key: not an Ed25519 key")
	}
	priv, err := ParseSigningKey(pemText)
	if err != nil {
		return nil, err
	}
	return priv.Public().(ed25519.PublicKey), nil
}
