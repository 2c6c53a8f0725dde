// Package gate is the layer every protocol is written against: who the
// client is (Authenticator), the session's audit rows (Session), and the
// decision on each request (Session.Decide). A protocol package imports
// gate and event for everything it needs of the host; the host never
// imports a protocol.
//
// # Adding a protocol
//
//  1. Make a package under protocols/ that terminates the wire protocol:
//     it parses what the client sends and answers in the client's own
//     protocol (never a dropped connection without a reason).
//  2. Register it from init with Register: its name; its options, a
//     struct with toml tags for the keys of its [[listeners]] (and
//     [[targets]]) tables beyond the common ones, whose Check applies
//     defaults and ranges with the Table helpers (Duration, Int: a
//     written value honoured or refused, never replaced) and relates the
//     table to the rest of the config (TargetRef), every problem at its
//     FILE:LINE:COL; and New, which takes the Listener, the targets and a
//     Deps (the authenticator, the access policy, the plugin chain, the
//     audit recorder, the approvals and a logger, shared with the other
//     protocols) and returns a Service. Importing the package in
//     cmd/gateway/protocols.go is the one line outside it.
//  3. Verify the client's token with Deps.Verify; turn its error into the
//     protocol's own answer with AuthFailure (no token, a refused token,
//     an issuer that cannot be reached).
//  4. Open a Session per client connection and identity (Deps.NewSession),
//     set its principal and target, and Open it with its session.open
//     row; the session's Log carries its ID.
//  5. Check access with Session.Authorize for each target, verb and
//     resource the protocol knows.
//  6. Turn each request into an event.Event of the protocol's kinds
//     ("echo.line", "pg.query", ...), and call Session.Decide: it admits
//     the row, runs the chain once, and handles chain errors, holds and
//     approvals. Apply the verdict's Changes the protocol accepts.
//  7. Pass each response through Decision.Process (the same chain
//     generation that decided the request), in chunks when it streams.
//  8. Record the request's row with Session.Row and Session.Record, with
//     the Decision's verdict, then call Decision.Done.
//  9. On a synced target, wait with Session.Durable before the request
//     goes out and before the answer is released.
//  10. Close the Session when the connection ends: its session.close row
//     repeats the open row (audit.CloseRow), and any Decision still held
//     is released.
//
// internal/echo is the smallest protocol that does all of this (its
// registration is in config.go); its tests run it end to end, from a
// gateway.toml through NewService.
package gate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Authenticator verifies a bearer token; *identity.Verifier is one. Its
// errors are a *TokenError for a token the gateway refuses, and anything
// else when the token could not be checked (the issuer's keys are
// unreachable): AuthFailure tells them apart.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (*event.Principal, error)
}

// TokenError is a token the gateway refuses. Reason is safe to show the
// client: it says what is wrong without echoing the token.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

// ErrNoToken is what a protocol reports when the client sent no token.
var ErrNoToken = errors.New("no token")

// AuthKind classifies a failed authentication, for the protocol's answer.
type AuthKind int

const (
	// AuthNoToken: the client sent none (HTTP 401 with a challenge).
	AuthNoToken AuthKind = iota + 1
	// AuthInvalid: the token was refused; the reason may be shown.
	AuthInvalid
	// AuthUnavailable: the token could not be checked now; try later.
	AuthUnavailable
)

// AuthFailure classifies an error from Verify (or ErrNoToken), with the
// reason the client may see.
func AuthFailure(err error) (AuthKind, string) {
	var te *TokenError
	switch {
	case errors.Is(err, ErrNoToken):
		return AuthNoToken, "an OIDC token is required"
	case errors.As(err, &te):
		return AuthInvalid, te.Reason
	default:
		return AuthUnavailable, "the token cannot be checked right now: the issuer's keys are unavailable"
	}
}

// Deps are the host services every protocol's listener uses.
type Deps struct {
	GatewayID string
	Auth      Authenticator
	Policy    *access.Policy
	Chain     event.Chain
	Recorder  audit.Recorder
	Log       *slog.Logger
	// Approvals holds requests a plugin answered with hold until a person
	// decides; nil (no [approvals]) makes a hold a deny that says so.
	Approvals *approval.Manager
	// ApprovalWait is how long a held request waits in a protocol that
	// can answer "pending" (HTTP 202) before it does.
	ApprovalWait time.Duration
	// DevTLS makes a TLS listener without a certificate serve one
	// generated in memory (`serve --dev`).
	DevTLS bool
	// Metrics counts sessions, requests and refusals for /metrics; nil:
	// nothing is counted.
	Metrics *Metrics
}

// Logger is d.Log, or slog's default when none was given.
func (d *Deps) Logger() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// Verify checks a bearer token.
func (d *Deps) Verify(ctx context.Context, raw string) (*event.Principal, error) {
	if raw == "" {
		d.Metrics.authFailed(ErrNoToken)
		return nil, ErrNoToken
	}
	p, err := d.Auth.Verify(ctx, raw)
	if err != nil {
		d.Metrics.authFailed(err)
	}
	return p, err
}

// AccessRequest is what a protocol asks the access rules about.
type AccessRequest = access.Request

// AccessDecision is their answer: the rule that matched, or why not.
type AccessDecision = access.Decision

// Authorize asks the access rules whether p may do req. Without rules
// nothing is granted: the gateway fails closed.
func (d *Deps) Authorize(p *event.Principal, req AccessRequest) AccessDecision {
	if d.Policy == nil || p == nil {
		d.Metrics.denied(req.Target)
		return AccessDecision{Reason: "no access rule grants target " + req.Target}
	}
	dec := d.Policy.Decide(p, req)
	if !dec.Allowed {
		d.Metrics.denied(req.Target)
	}
	return dec
}

// Admit reports whether the audit trail can take the rows of one more
// request; a protocol refuses the request up front when it cannot.
func (d *Deps) Admit() error {
	if a, ok := d.Recorder.(audit.Admitter); ok {
		if err := a.Admit(); err != nil {
			d.Metrics.admitFailed()
			return err
		}
	}
	return nil
}
