package http

import (
	"net/http"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// newScrubber blanks the credential the gateway injects for a target
// wherever it comes back (gate.Scrubber): the raw secret, and for basic
// auth the base64 of user:password as it travels in the header.
func newScrubber(cred gate.Credential) *gate.Scrubber {
	switch cred.Type {
	case "bearer":
		return gate.NewScrubber([]string{cred.Token.Value()})
	case "basic":
		return gate.NewScrubber([]string{cred.Password.Value()}, cred.Username+":"+cred.Password.Value())
	case "header":
		return gate.NewScrubber([]string{cred.Value.Value()})
	}
	return gate.NewScrubber(nil)
}

// scrubHeader blanks secrets in every value of h.
func scrubHeader(s *gate.Scrubber, h http.Header) int {
	n := 0
	for _, vs := range h {
		for i, v := range vs {
			var c int
			vs[i], c = s.ScrubString(v)
			n += c
		}
	}
	return n
}
