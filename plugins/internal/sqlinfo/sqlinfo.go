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
	// NotReadOnly names the first statement a read-only target refuses,
	// as "COMMAND (class)"; empty when every statement is a read, a
	// transaction control or a session setting that keeps read-only.
	NotReadOnly string
}

// readOnlyOK are the classes a read-only target allows: an allow-list, so
// that a class added later is refused until it is listed here.
func readOnlyOK(class string) bool {
	return class == "read" || class == "transaction" || class == "session"
}

// Of summarizes classified statements.
func Of(stmts []Statement) Info {
	var in Info
	seen := map[string]bool{}
	for _, st := range stmts {
		c := st.Class
		in.Rules.Classes = append(in.Rules.Classes, c)
		if st.Command == "DISCARD ALL" {
			// DISCARD ALL is dcl (it restores the session's role) and
			// also does RESET ALL, which lifts read-only: rules on
			// either class see it.
			in.Rules.Classes = append(in.Rules.Classes, "lift_read_only")
		}
		if in.NotReadOnly == "" && !readOnlyOK(c) {
			in.NotReadOnly = st.Command
			if in.NotReadOnly == "" {
				in.NotReadOnly = "unrecognised statement"
			}
			in.NotReadOnly += " (" + c + ")"
		}
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
		// A MERGE has HasWhere when each of its UPDATE and DELETE actions
		// has its own WHEN ... AND condition (host/plugin/sqlclass).
		if (st.Command == "UPDATE" || st.Command == "DELETE" || st.Command == "MERGE") && !st.HasWhere {
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
