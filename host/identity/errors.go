package identity

import "errors"

// ErrUnavailable means the token could not be checked because its issuer's
// keys could not be fetched. The gateway fails closed; a later request
// tries again.
var ErrUnavailable = errors.New("issuer keys unavailable")

// TokenError is a token the gateway refuses. Reason is safe to show the
// client: it says what is wrong without echoing the token.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

func invalid(reason string) error { return &TokenError{Reason: reason} }
