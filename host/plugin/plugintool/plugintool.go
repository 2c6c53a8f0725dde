// Package plugintool is what `gateway plugin new|build|test` do: scaffold
// a plugin, build it with the standard Go toolchain for wasip1, and run
// one event through it with the real host.
package plugintool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/sdk"
)

// Build compiles the plugin in dir to out (default: dir/<name>.wasm) with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and returns out's path.
func Build(dir, out string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if out == "" {
		out = filepath.Join(abs, filepath.Base(abs)+".wasm")
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("plugin build: go build: %v\n%s", err, stderr.String())
	}
	return out, nil
}

// TestEvent is an event as `gateway plugin test --event` reads it.
type TestEvent struct {
	Kind      string `json:"kind"`
	Phase     string `json:"phase"` // request (default) or response
	Protocol  string `json:"protocol"`
	Target    string `json:"target"`
	SessionID string `json:"session_id"`
	// Time is the "time" attribute the plugin reads (RFC 3339); default:
	// the clock's.
	Time      string            `json:"time"`
	Principal *TestPrincipal    `json:"principal"`
	Fields    map[string]string `json:"fields"`
	Rows      *TestRows         `json:"rows"`
}

// TestPrincipal is the caller of a TestEvent.
type TestPrincipal struct {
	Issuer  string            `json:"issuer"`
	Subject string            `json:"subject"`
	Email   string            `json:"email"`
	Groups  []string          `json:"groups"`
	Claims  map[string]string `json:"claims"`
}

// TestRows is a row batch; a JSON null value is SQL NULL.
type TestRows struct {
	Columns []string    `json:"columns"`
	Values  [][]*string `json:"values"`
}

// Result is what the plugin decided, and the event as it left it.
type Result struct {
	Action         string            `json:"action"`
	Plugin         string            `json:"plugin,omitempty"`
	Reason         string            `json:"reason,omitempty"`
	ApproverGroups []string          `json:"approver_groups,omitempty"`
	Changes        map[string]string `json:"changes,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	Fields         map[string]string `json:"fields,omitempty"`
	Rows           *TestRows         `json:"rows,omitempty"`
	// Failure is what failed when the plugin crashed (its panic message,
	// a timeout, fuel or memory exhausted); Action is then "error".
	Failure string `json:"failure,omitempty"`
}

// ErrCrashed is returned, with the Result, when the plugin failed.
var ErrCrashed = errors.New("the plugin crashed")

// Run loads wasm with configTOML (the plugin's own table, may be empty)
// and processes the event in eventJSON. A plugin that fails returns its
// Result (Action "error") and an error wrapping ErrCrashed.
func Run(ctx context.Context, wasm, configTOML, eventJSON []byte) (_ *Result, err error) {
	var te TestEvent
	dec := json.NewDecoder(bytes.NewReader(eventJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&te); err != nil {
		return nil, fmt.Errorf("plugin test: event: %w", err)
	}
	if te.Kind == "" {
		return nil, errors.New("plugin test: event: kind is required")
	}
	cfg := map[string]any{}
	if len(configTOML) > 0 {
		if _, err := toml.Decode(string(configTOML), &cfg); err != nil {
			return nil, fmt.Errorf("plugin test: config: %w", err)
		}
	}
	opts := plugin.Options{MaskKey: []byte("gateway plugin test")}
	// Compiled code is kept between runs (a Go guest takes a second or
	// more to compile), where the user's caches live; none: in memory.
	if dir, err := os.UserCacheDir(); err == nil {
		opts.CacheDir = filepath.Join(dir, "tollgate", "wasm-cache")
	}
	if te.Time != "" {
		at, err := time.Parse(time.RFC3339, te.Time)
		if err != nil {
			return nil, fmt.Errorf("plugin test: event: time: %w", err)
		}
		opts.Now = func() time.Time { return at }
	}
	h, err := plugin.NewHost(opts)
	if err != nil {
		return nil, err
	}
	defer h.Close(ctx)
	p, err := h.Load(ctx, config.Plugin{Name: "plugin", Config: cfg}, wasm, plugin.Limits{MemoryPages: 512, Timeout: 5e9, Instances: 1})
	if err != nil {
		return nil, err
	}
	defer p.Close(ctx)
	ev := te.event()
	if !p.Wants(ev.Kind) {
		return &Result{Action: "allow", Reason: "the plugin does not subscribe to " + ev.Kind, Fields: ev.Fields}, nil
	}
	v, err := p.Process(ctx, ev)
	if err != nil {
		return nil, err
	}
	r := &Result{Action: v.Action.String(), Plugin: v.Plugin, Reason: v.Reason, ApproverGroups: v.ApproverGroups,
		Changes: v.Changes, Fields: ev.Fields}
	if v.Failed != "" {
		r.Action, r.Failure = "error", v.Failed
		defer func() { err = fmt.Errorf("%w: %s", ErrCrashed, v.Failed) }()
	}
	for _, a := range v.Annotations {
		if r.Annotations == nil {
			r.Annotations = map[string]string{}
		}
		r.Annotations[a.Key] = a.Value
	}
	if ev.Rows != nil {
		r.Rows = &TestRows{Columns: te.Rows.Columns}
		for _, row := range ev.Rows.Values {
			var out []*string
			for _, c := range row {
				if c.Null {
					out = append(out, nil)
				} else {
					s := string(c.Data)
					out = append(out, &s)
				}
			}
			r.Rows.Values = append(r.Rows.Values, out)
		}
	}
	return r, nil
}

func (te TestEvent) event() *event.Event {
	ev := &event.Event{Kind: te.Kind, Protocol: te.Protocol, Target: te.Target, SessionID: te.SessionID, Fields: te.Fields}
	if te.Phase == "response" {
		ev.Phase = event.Response
	}
	if ev.SessionID == "" {
		ev.SessionID = "00000000-0000-4000-8000-000000000000"
	}
	if ev.Fields == nil {
		ev.Fields = map[string]string{}
	}
	if p := te.Principal; p != nil {
		ev.Principal = &event.Principal{Issuer: p.Issuer, Subject: p.Subject, Email: p.Email, Groups: p.Groups, Claims: p.Claims, Kept: p.Claims}
	}
	if rs := te.Rows; rs != nil {
		ev.Rows = &event.Rows{}
		for _, c := range rs.Columns {
			ev.Rows.Columns = append(ev.Rows.Columns, event.Column{Name: c, Type: "text"})
		}
		for _, row := range rs.Values {
			var cells []event.Cell
			for _, v := range row {
				if v == nil {
					cells = append(cells, event.Cell{Null: true})
				} else {
					cells = append(cells, event.Cell{Data: []byte(*v)})
				}
			}
			ev.Rows.Values = append(ev.Rows.Values, cells)
		}
	}
	return ev
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Scaffold writes a new plugin named name into dir/name: a handler, a
// sample event and config, a README, a test that runs the plugin through
// the gateway's plugin host, and a go.mod that requires the SDK from a
// copy written beside it (SDKDir), so that it builds anywhere. It refuses
// to overwrite.
func Scaffold(dir, name, gatewayVersion string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("plugin new: name %q: use lower-case letters, digits, - and _", name)
	}
	root := filepath.Join(dir, name)
	if _, err := os.Stat(root); err == nil {
		return "", fmt.Errorf("plugin new: %s already exists", root)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("plugin new: %w", err)
	}
	for file, body := range scaffoldFiles(name, gatewayVersion) {
		if err := os.WriteFile(filepath.Join(root, file), []byte(body), 0o644); err != nil {
			return "", fmt.Errorf("plugin new: %w", err)
		}
	}
	if err := WriteSDK(filepath.Join(root, SDKDir)); err != nil {
		return "", err
	}
	return root, nil
}

// WriteSDK writes the SDK module's source, as this gateway embeds it,
// into dir: what a plugin's go.mod replace points at. Files of an older
// copy are overwritten; nothing else in dir is touched.
func WriteSDK(dir string) error {
	return fs.WalkDir(sdk.Source, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("plugin sdk: %w", err)
			}
			return nil
		}
		b, err := sdk.Source.ReadFile(path)
		if err != nil {
			return fmt.Errorf("plugin sdk: %w", err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return fmt.Errorf("plugin sdk: %w", err)
		}
		return nil
	})
}
