// Package sqlinfo turns the host's SQL classification into what the guard
// and approve plugins' rules and audit annotations need.
package sqlinfo

import (
	"strings"

	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
)

// Statement is one classified statement (the SDK's, without the SDK, so
// that this package builds and tests natively).
type Statement struct {
	Class    string
	Command  string
	HasWhere bool
}

// Info summarizes the statements of one query.
type Info struct {
	Rules        rules.SQLInfo
	Unknown      bool   // some statement could not be classified
	FirstUnknown string // its leading words, for the reason
	Summary      string // e.g. "read" or "write,ddl", for the audit row
}

// Of summarizes classified statements.
func Of(stmts []Statement) Info {
	var in Info
	seen := map[string]bool{}
	for _, st := range stmts {
		c := st.Class
		in.Rules.Classes = append(in.Rules.Classes, c)
		if !seen[c] {
			seen[c] = true
			if in.Summary != "" {
				in.Summary += ","
			}
			in.Summary += c
		}
		if c == "unknown" && !in.Unknown {
			in.Unknown = true
			in.FirstUnknown = st.Command
			if in.FirstUnknown == "" {
				in.FirstUnknown = "unrecognised statement"
			}
		}
		if (st.Command == "UPDATE" || st.Command == "DELETE") && !st.HasWhere {
			in.Rules.WithoutWhere = true
		}
	}
	return in
}

// Lines splits a newline-separated attribute, such as principal.groups.
func Lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
