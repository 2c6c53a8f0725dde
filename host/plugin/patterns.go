package plugin

import (
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/detect"
)

// compilePattern compiles spec once per plugin: every instance that asks
// for the same spec gets the same id. A spec is "re:<RE2>", "whole" (every
// value entirely, however long), or detector names joined by commas:
// builtins, gitleaks rule ids and groups (secrets, pii, gitleaks,
// vendor:<name>; see detect.Resolve), optionally followed by
// "|allow:<RE2>": values that match the expression whole are not masked.
func (p *Plugin) compilePattern(spec string) (int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.specs[spec]; ok {
		return id, nil
	}
	names, allow, hasAllow := strings.Cut(spec, "|allow:")
	var ds []detect.Detector
	if hasAllow && (names == detect.KindWhole || strings.HasPrefix(names, "re:")) {
		return absent, fmt.Errorf("pattern %q: an allowlist goes with detector names only", spec)
	}
	if spec == detect.KindWhole {
		ds = append(ds, detect.Whole())
	} else if expr, ok := strings.CutPrefix(spec, "re:"); ok {
		d, err := detect.Pattern("pattern", expr)
		if err != nil {
			return absent, fmt.Errorf("pattern %q: %w", spec, err)
		}
		ds = append(ds, d)
	} else {
		var err error
		if ds, err = detect.Resolve(strings.Split(names, ",")); err != nil {
			return absent, fmt.Errorf("pattern %q: %w", spec, err)
		}
		if len(ds) == 0 {
			return absent, fmt.Errorf("pattern %q: no detector named", spec)
		}
	}
	set := detect.NewSet(ds...)
	if hasAllow {
		var err error
		if set, err = set.WithAllow(allow); err != nil {
			return absent, fmt.Errorf("pattern %q: %w", spec, err)
		}
	}
	id := int32(len(p.patterns))
	p.patterns = append(p.patterns, set)
	p.specs[spec] = id
	return id, nil
}

// recordOnly, or-ed into the strategy of mask, makes the change
// record-only (sdk/ABI.md): the event's field (what the audit row records
// and later plugins see) is masked, the verdict's Changes (what the
// protocol puts on the wire) are not.
const recordOnly = 0x100

func strategyOf(code uint32) (detect.Strategy, error) {
	switch code {
	case 0:
		return detect.Redact, nil
	case 1:
		return detect.Partial, nil
	case 2:
		return detect.Hash, nil
	}
	return 0, fmt.Errorf("unknown mask strategy %d", code)
}

// maskSpans applies an ABI strategy code.
func maskSpans(b []byte, spans []detect.Span, strategy uint32, key []byte) ([]byte, error) {
	st, err := strategyOf(strategy)
	if err != nil {
		return nil, err
	}
	return detect.Mask(nil, b, spans, st, key), nil
}
