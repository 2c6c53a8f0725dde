package gate

import "net/http"

// APIService is a Service that also serves routes on the gateway's API
// (the admin listener): the SSH listener issues its certificates there.
// The gateway mounts the routes before the listener starts, so a
// handler answers 503 until it has what it needs.
type APIService interface {
	Service
	API() []Route
}

// Route is one route a protocol adds to the gateway's API.
type Route struct {
	// Pattern is a net/http ServeMux pattern ("POST /v1/ssh/NAME/certificate");
	// a protocol prefixes it with its name and the listener's.
	Pattern string
	// Admin routes reach Handler only with a token in one of the [admin]
	// groups (the API checks it first); the others authenticate, and
	// apply the access rules, themselves.
	Admin   bool
	Handler http.Handler
}
