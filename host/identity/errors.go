package identity

import (
	"errors"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// ErrUnavailable means the token could not be checked because its issuer's
// keys could not be fetched. The gateway fails closed; a later request
// tries again.
var ErrUnavailable = errors.New("issuer keys unavailable")

// TokenError is a token the gateway refuses; the protocol layer defines
// it, so that protocols tell a refused token from an unreachable issuer
// without importing this package.
type TokenError = gate.TokenError

func invalid(reason string) error { return &TokenError{Reason: reason} }
