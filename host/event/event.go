// Package event defines the one shape that protocol packages and the plugin
// host share: an Event describes one step of a session (a request or a
// response), and a Verdict is what the plugin chain decided about it.
//
// Protocol packages turn wire messages into Events; the host never sees a
// wire format. Keep this package free of dependencies so that both sides, and
// the guest SDK's mirror of it, can follow it without pulling anything in.
package event

import "context"

// Phase says whether an Event travels towards the target or back to the client.
type Phase uint8

const (
	Request  Phase = iota // client → target
	Response              // target → client
)

func (p Phase) String() string {
	if p == Response {
		return "response"
	}
	return "request"
}

// Principal is who a verified token says the caller is.
type Principal struct {
	Issuer  string // the configured issuer's name, not its URL
	Subject string
	Email   string
	Groups  []string
	// Claims holds every scalar claim of the token, flattened to strings,
	// for access rules. It is never written to the audit trail whole.
	Claims map[string]string
	// Kept is the subset of Claims the issuer's config keeps for the audit
	// trail (for GitHub Actions: repository, workflow, run_id...).
	Kept map[string]string
}

// InGroup reports whether the principal is a member of group g.
func (p *Principal) InGroup(g string) bool {
	for _, have := range p.Groups {
		if have == g {
			return true
		}
	}
	return false
}

// Event is one step of a session, as plugins see it.
type Event struct {
	Phase     Phase
	Protocol  string // "http", "postgres", "ssh", "kube"
	Kind      string // "http.request", "http.response", "pg.query"...
	SessionID string
	Target    string
	Principal *Principal
	// Fields carries the payload of this kind, by name (for HTTP: method,
	// path, query, status and header.<canonical-name>). Credentials the
	// gateway injects or strips never appear here.
	Fields map[string]string
	// Rows is the result-row batch of a "*.rows" event; nil otherwise.
	Rows *Rows
}

// Rows is a batch of result rows, handed to plugins in one call.
type Rows struct {
	Columns []Column
	Values  [][]Cell // Values[row][column]
}

// Column describes one column of a batch.
type Column struct {
	Name   string
	Type   string // the protocol's type name, e.g. "text", "int4"
	Binary bool   // values are in the protocol's binary format
}

// Cell is one value; Null distinguishes SQL NULL from the empty string.
type Cell struct {
	Data []byte
	Null bool
}

// Action is what the chain decided.
type Action uint8

const (
	Allow   Action = iota
	Rewrite        // allowed, with Changes applied to the event's fields
	Deny
	Hold // wait for a human's approval
)

func (a Action) String() string {
	switch a {
	case Rewrite:
		return "rewrite"
	case Deny:
		return "deny"
	case Hold:
		return "hold"
	}
	return "allow"
}

// Annotation is a key/value a plugin adds to the audit row.
type Annotation struct{ Key, Value string }

// Verdict is the outcome of running an Event through the chain.
type Verdict struct {
	Action         Action
	Plugin         string            // the plugin that decided; "" when no plugin acted
	Reason         string            // shown to the client on deny or hold
	Changes        map[string]string // field → new value, for Rewrite
	Annotations    []Annotation
	ApproverGroups []string // for Hold
	// Failed is set when a plugin failure decided the verdict (a crash, a
	// timeout, fuel or memory exhausted, no instance free): what went
	// wrong, e.g. the guest's panic message. The action is then Deny (the
	// plugin's on_error), and the audit row's verdict reads "error".
	Failed string
}

// Subscriber is implemented by chains that know which kinds they act on.
// Protocols use it to skip work no plugin wants, such as buffering a
// response body for inspection.
type Subscriber interface {
	Wants(kind string) bool
}

// WantsBody is the subscription by which a plugin asks for the request
// body of HTTP requests in the field "body" (sdk/ABI.md): reading it costs
// a buffer per request and puts it in the audit row, so a protocol reads
// it only when a plugin asked by this name ("*" does not ask).
const WantsBody = "http.request.body"

// FieldWanter is a chain that knows which optional fields its plugins
// asked for by name, such as WantsBody.
type FieldWanter interface {
	WantsField(sub string) bool
}

// WantsField reports whether a plugin of c asked for sub; a chain that
// does not say (a FieldWanter) asked for nothing.
func WantsField(c Chain, sub string) bool {
	if f, ok := c.(FieldWanter); ok {
		return f.WantsField(sub)
	}
	return false
}

// Acquirer is a chain that can be replaced while serving (a reload): a
// request or statement keeps the chain it acquired until it releases it.
type Acquirer interface {
	Acquire() (Chain, func())
}

// Acquire returns the chain one request or statement should use, and the
// function that releases it; a chain that cannot be replaced is itself,
// with nothing to release.
func Acquire(c Chain) (Chain, func()) {
	if a, ok := c.(Acquirer); ok {
		return a.Acquire()
	}
	return c, func() {}
}

// Wants reports whether c acts on kind: a nil chain acts on nothing, a
// chain that is not a Subscriber on everything.
func Wants(c Chain, kind string) bool {
	if c == nil {
		return false
	}
	if s, ok := c.(Subscriber); ok {
		return s.Wants(kind)
	}
	return true
}

// Chain runs an Event through the configured plugins in order.
//
// Process returns an error only when the chain itself failed in a way the
// operator's on_error did not resolve; callers treat that as a deny.
type Chain interface {
	Process(ctx context.Context, ev *Event) (Verdict, error)
}
