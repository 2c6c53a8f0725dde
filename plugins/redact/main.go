//go:build wasip1

// Command redact is Tollgate's built-in redaction plugin for streamed text:
// SSH and exec output, logs, HTTP bodies. It masks secrets with the host's
// detectors and stays correct when a secret is split across two chunks.
package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/plugins/internal/allow"
	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Detectors []string `json:"detectors"` // default: secrets (every gitleaks rule, keys, tokens, private keys, passwords)
	Strategy  string   `json:"strategy"`  // redact (default), partial, hash
	Streams   []string `json:"streams"`   // kinds whose "data" field is a stream; default ssh.output, kube.output
	Bodies    []string `json:"bodies"`    // kinds whose "body" field is whole; default http.response
	// Requests are request kinds whose fields (RequestFields) are
	// redacted in the audit row only: the target receives them as sent
	// (a record-only change, sdk/ABI.md). Default: none.
	Requests      []string `json:"requests"`
	RequestFields []string `json:"request_fields"` // default: query, path, body
	// Allow: per-target values that are not secrets; the first entry
	// whose targets match the event's target applies.
	Allow []allow.Entry `json:"allow"`
}

var (
	set      sdk.Pattern
	allowed  []sdk.Pattern // allowed[i]: set with cfg.Allow[i]
	strategy = sdk.Redact
	streams  = map[string]bool{}
	requests = map[string]bool{}
)

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("redact: config: " + err.Error())
	}
	if len(cfg.Detectors) == 0 {
		cfg.Detectors = []string{"secrets"}
	}
	switch cfg.Strategy {
	case "partial":
		strategy = sdk.Partial
	case "hash":
		strategy = sdk.Hash
	}
	if len(cfg.Streams) == 0 {
		cfg.Streams = []string{"ssh.output", "kube.output"}
	}
	if len(cfg.Bodies) == 0 {
		cfg.Bodies = []string{"http.response"}
	}
	var ok bool
	if set, ok = sdk.Compile(strings.Join(cfg.Detectors, ",")); !ok {
		panic("redact: unknown detector in " + strings.Join(cfg.Detectors, ","))
	}
	var err error
	if allowed, err = allow.Compile(strings.Join(cfg.Detectors, ","), cfg.Allow, sdk.Compile); err != nil {
		panic("redact: " + err.Error())
	}
	for _, k := range cfg.Streams {
		streams[k] = true
		sdk.Subscribe(k)
	}
	for _, k := range cfg.Bodies {
		sdk.Subscribe(k)
	}
	if len(cfg.RequestFields) == 0 {
		cfg.RequestFields = []string{"query", "path", "body"}
	}
	for _, k := range cfg.Requests {
		requests[k] = true
		sdk.Subscribe(k)
		if k == "http.request" && slices.Contains(cfg.RequestFields, "body") {
			// The gateway reads request bodies only for a plugin that
			// asks for them by this name (sdk/ABI.md).
			sdk.Subscribe("http.request.body")
		}
	}
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		p := set
		if i := allow.Pick(cfg.Allow, ev.Target()); i >= 0 {
			p = allowed[i]
		}
		var n int
		if requests[ev.Kind()] {
			for _, f := range cfg.RequestFields {
				n += max(p.Mask(f, strategy|sdk.RecordOnly), 0)
			}
		} else if streams[ev.Kind()] {
			n = p.MaskStream("data", strategy)
		} else {
			n = p.Mask("body", strategy)
		}
		if n > 0 {
			sdk.Annotate("redact.values", strconv.Itoa(n))
		}
		return sdk.Allow()
	})
}

func main() {}
