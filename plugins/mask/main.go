//go:build wasip1

// Command mask is Tollgate's built-in masking plugin: it masks result
// values by column name and by what they look like (e-mail addresses, card
// numbers, keys, tokens...), in row batches and in text fields such as an
// HTTP response body. The host does the scanning; this plugin decides.
package main

import (
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/plugins/internal/allow"
	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Strategy       string   `json:"strategy"`        // redact, partial (default), hash
	Columns        []string `json:"columns"`         // column-name globs masked whole, case-insensitive
	ColumnStrategy string   `json:"column_strategy"` // default: redact
	Detectors      []string `json:"detectors"`       // default: email, credit_card, iban, secrets, high_entropy
	Fields         []string `json:"fields"`          // event fields to scan; default: body, message, detail, hint, where, payload
	Kinds          []string `json:"kinds"`           // default: pg.rows, pg.error, pg.notice, pg.notify, http.response
	// Allow: per-target values that are not secrets (test card numbers,
	// a support address); the first entry whose targets match applies.
	Allow []allow.Entry `json:"allow"`
}

var (
	whole, detectors   sdk.Pattern
	allowed            []sdk.Pattern // allowed[i]: detectors with cfg.Allow[i]
	strategy, colStrat sdk.Strategy
)

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("mask: config: " + err.Error())
	}
	strategy = parseStrategy(cfg.Strategy, sdk.Partial)
	colStrat = parseStrategy(cfg.ColumnStrategy, sdk.Redact)
	if len(cfg.Detectors) == 0 {
		// Phone numbers are opt-in ("phone" or "pii"): validating a
		// candidate costs microseconds a row batch should not pay unasked.
		cfg.Detectors = []string{"email", "credit_card", "iban", "secrets", "high_entropy"}
	}
	// An error, a notice or a notification can carry a value as well as
	// a row can: `SELECT secret::int` puts it in the error's message.
	if len(cfg.Fields) == 0 {
		cfg.Fields = []string{"body", "message", "detail", "hint", "where", "payload"}
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{"pg.rows", "pg.error", "pg.notice", "pg.notify", "http.response"}
	}
	var ok bool
	if detectors, ok = sdk.Compile(strings.Join(cfg.Detectors, ",")); !ok {
		panic("mask: unknown detector in " + strings.Join(cfg.Detectors, ","))
	}
	// "whole", not a regexp: a pattern ignores matches over 256 bytes, and
	// a long value in a masked column must not pass.
	if whole, ok = sdk.Compile("whole"); !ok {
		panic("mask: whole-value pattern")
	}
	for i := range cfg.Columns {
		cfg.Columns[i] = strings.ToLower(cfg.Columns[i])
	}
	var err error
	if allowed, err = allow.Compile(strings.Join(cfg.Detectors, ","), cfg.Allow, sdk.Compile); err != nil {
		panic("mask: " + err.Error())
	}
	for _, k := range cfg.Kinds {
		sdk.Subscribe(k)
	}
	// Batches with nothing to mask never reach the plugin: the host checks
	// the column names and pre-scans the values.
	for _, c := range cfg.Columns {
		sdk.SubscribeRowsWithColumn(c)
	}
	sdk.SubscribeRowsMatching(detectors)
	sdk.HandleRows(maskRows)
	sdk.HandleEvent(maskFields)
}

func maskRows(ev sdk.Event, rows sdk.Rows) sdk.Verdict {
	var byName []string
	for i, c := range rows.Columns() {
		if matchAny(cfg.Columns, strings.ToLower(c)) {
			if rows.MaskColumn(whole, i, colStrat) > 0 {
				byName = append(byName, c)
			}
		}
	}
	n := rows.MaskColumn(detectorsFor(ev), -1, strategy)
	if len(byName) > 0 {
		sdk.Annotate("mask.columns", strings.Join(byName, ","))
	}
	if n > 0 {
		sdk.Annotate("mask.values", strconv.Itoa(n))
	}
	return sdk.Allow()
}

func maskFields(ev sdk.Event) sdk.Verdict {
	total := 0
	p := detectorsFor(ev)
	for _, f := range cfg.Fields {
		total += max(p.Mask(f, strategy), 0)
	}
	if total > 0 {
		sdk.Annotate("mask.values", strconv.Itoa(total))
	}
	return sdk.Allow()
}

// detectorsFor is the detector set for the event's target: with the first
// matching allowlist entry, if any.
func detectorsFor(ev sdk.Event) sdk.Pattern {
	if i := allow.Pick(cfg.Allow, ev.Target()); i >= 0 {
		return allowed[i]
	}
	return detectors
}

func parseStrategy(s string, def sdk.Strategy) sdk.Strategy {
	switch s {
	case "redact":
		return sdk.Redact
	case "partial":
		return sdk.Partial
	case "hash":
		return sdk.Hash
	case "":
		return def
	}
	panic("mask: unknown strategy " + s)
}

// matchAny reports whether name matches one of the globs (* only).
func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if glob(g, name) {
			return true
		}
	}
	return false
}

func glob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if glob(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && p[0] == s[0] && glob(p[1:], s[1:])
}

func main() {}
