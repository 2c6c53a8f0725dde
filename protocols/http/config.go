package http

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/gate"
)

func init() {
	gate.Register(gate.Protocol{
		Name:        "http",
		NewListener: func() gate.Options { return &ListenerOptions{} },
		NewTarget:   func() gate.Options { return &TargetOptions{} },
		New: func(l gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (gate.Service, error) {
			return New(l, targets, deps)
		},
		Try: try,
	})
}

// try is a curl per route, for `serve --dev` to print.
func try(l gate.Listener, _ []gate.Target) []string {
	o, _ := l.Options.(*ListenerOptions)
	if o == nil {
		return nil
	}
	var out []string
	for _, r := range o.Routes {
		out = append(out, fmt.Sprintf("curl -s -H \"Authorization: Bearer $TOKEN\" http://%s%s/hello", l.Listen, r.PathPrefix))
	}
	return out
}

// Defaults of an http listener's keys.
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultReadBodyTimeout     = 5 * time.Minute
	DefaultMaxInspectBodyBytes = 1 << 20
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	day = 24 * time.Hour
)

// ListenerOptions are an http [[listeners]] table's own keys.
type ListenerOptions struct {
	// Routes send matching requests to targets; at least one.
	Routes            []Route       `toml:"routes"`
	ReadHeaderTimeout gate.Duration `toml:"read_header_timeout"` // default 10s
	IdleTimeout       gate.Duration `toml:"idle_timeout"`        // keep-alive; default 120s
	MaxHeaderBytes    int           `toml:"max_header_bytes"`    // default 64 KiB
	// ReadBodyTimeout bounds the time from the end of a request's header
	// to the last byte of its body (default 5m); a body that takes longer
	// is answered 408 and recorded. "0s": no deadline.
	ReadBodyTimeout gate.Duration `toml:"read_body_timeout"`
	// MaxInspectBodyBytes bounds a response body the gateway holds to
	// inspect (default 1 MiB): an uncompressed body over it streams
	// through with only the credential scrub, a compressed one that
	// decodes to more is refused with 502, never passed on unread. It
	// bounds a request body read for a plugin that asked for it too
	// (reqbody.go); one over it is forwarded unread.
	MaxInspectBodyBytes int64 `toml:"max_inspect_body_bytes"`
}

// Route sends matching requests on a listener to a target.
type Route struct {
	Target     string `toml:"target"`
	Host       string `toml:"host"`
	PathPrefix string `toml:"path_prefix"` // stripped before forwarding
}

// Check applies the listener's ranges and defaults and checks its
// routes: each names an http target, and several routes are told apart
// by host or path prefix.
func (o *ListenerOptions) Check(t *gate.Table) {
	t.Duration("read_header_timeout", &o.ReadHeaderTimeout, time.Second, 10*time.Minute, DefaultReadHeaderTimeout)
	t.Duration("idle_timeout", &o.IdleTimeout, time.Second, day, DefaultIdleTimeout)
	t.Int("max_header_bytes", &o.MaxHeaderBytes, kib, 16*mib, DefaultMaxHeaderBytes)
	t.Duration("read_body_timeout", &o.ReadBodyTimeout, 0, day, DefaultReadBodyTimeout) // 0: no deadline on request bodies
	t.Int64("max_inspect_body_bytes", &o.MaxInspectBodyBytes, kib, gib, DefaultMaxInspectBodyBytes)
	if len(o.Routes) == 0 {
		t.Problem("", "needs at least one [[listeners.routes]] entry")
	}
	seen := map[string]bool{}
	for j, r := range o.Routes {
		rp := fmt.Sprintf("routes[%d]", j)
		t.TargetRef(rp+".target", r.Target)
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			t.Problem(rp+".path_prefix", "must start with /")
		}
		if len(o.Routes) > 1 && r.Host == "" && r.PathPrefix == "" {
			t.Problem(rp, "with several routes, each needs host or path_prefix")
		}
		key := strings.ToLower(r.Host) + " " + strings.TrimSuffix(r.PathPrefix, "/")
		if seen[key] {
			t.Problem(rp, "duplicate route")
		}
		seen[key] = true
	}
}

// TargetOptions are an http [[targets]] table's own keys.
type TargetOptions struct {
	// Upgrades lists the protocols a client may switch to with an
	// Upgrade header (default ["websocket"]); any other is refused with
	// 400. An empty list refuses every upgrade.
	Upgrades []string `toml:"upgrades"`
	// Git serves the target as a Git smart HTTP server (clone, fetch,
	// push; protocol v0 and v2): fetches and pushes are events of their
	// own (git.fetch, git.push) and rows, access rules see the verbs
	// FETCH and PUSH on the repository path, and a refused push is
	// answered in git's own report-status.
	Git bool `toml:"git"`
	// GitSecretScan refuses a push whose new files hold a secret (a
	// private key, a cloud key, a token), naming the path and line.
	GitSecretScan bool `toml:"git_secret_scan"`
	// GitMaxPushBytes bounds a push's pack, which is spooled to a
	// temporary file before it is checked (default 1 GiB).
	GitMaxPushBytes int64 `toml:"git_max_push_bytes"`
}

// DefaultGitMaxPushBytes is git_max_push_bytes' default.
const DefaultGitMaxPushBytes = 1 << 30

// Check applies the target's default upgrades and checks its upstream
// URL and credential.
func (o *TargetOptions) Check(t *gate.Table) {
	if o.Upgrades == nil {
		o.Upgrades = []string{"websocket"}
	}
	for j, up := range o.Upgrades {
		if up == "" || strings.ContainsAny(up, " \t,/") {
			t.Problem(fmt.Sprintf("upgrades[%d]", j), "must be a protocol name such as websocket")
		}
	}
	t.Int64("git_max_push_bytes", &o.GitMaxPushBytes, mib, 64*gib, DefaultGitMaxPushBytes)
	if o.GitSecretScan && !o.Git {
		t.Problem("git_secret_scan", "only applies to a target with git = true")
	}
	tg := t.Self()
	u, err := url.Parse(tg.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Problem("upstream", "must be an http:// or https:// URL with a host")
	} else if tg.CAFile != "" && u.Scheme != "https" {
		t.Problem("ca_file", "only applies to an https upstream")
	}
	switch cr := tg.Credential; cr.Type {
	case "none":
	case "bearer":
		t.RequireSecret("credential.token", cr.Token)
	case "basic":
		if cr.Username == "" {
			t.Problem("credential", "username is required for basic credentials")
		}
		t.RequireSecret("credential.password", cr.Password)
	case "header":
		if cr.Header == "" {
			t.Problem("credential", "header is required for header credentials")
		} else if strings.EqualFold(cr.Header, "Host") {
			t.Problem("credential.header", "cannot be Host")
		}
		t.RequireSecret("credential.value", cr.Value)
	default:
		t.Problem("credential.type", "must be none, bearer, basic or header")
	}
}

// listenerConfig is a listener's config as the package uses it: the
// common keys and the protocol's own side by side.
type listenerConfig struct {
	gate.Listener
	ListenerOptions
}

// targetOptions are t's http options; the defaults for a target that did
// not pass through config.Parse.
func targetOptions(t *gate.Target) *TargetOptions {
	if o, ok := t.Options.(*TargetOptions); ok {
		return o
	}
	return &TargetOptions{Upgrades: []string{"websocket"}, GitMaxPushBytes: DefaultGitMaxPushBytes}
}
