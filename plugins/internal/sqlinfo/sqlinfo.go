// Package sqlinfo turns the SQL classifier's output into what the guard
// and approve plugins' rules and audit annotations need.
package sqlinfo

import (
	"strings"

	"github.com/tollgate-dev/tollgate/plugins/guard/sqlclass"
	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
)

// Info summarizes the statements of one query.
type Info struct {
	Rules        rules.SQLInfo
	Unknown      bool   // some statement could not be classified
	FirstUnknown string // its leading words, for the reason
	Summary      string // e.g. "read" or "write,ddl", for the audit row
}

// Of classifies sql.
func Of(sql string) Info {
	var in Info
	seen := map[string]bool{}
	for _, st := range sqlclass.Classify(sql) {
		c := strings.ToLower(st.Class.String())
		in.Rules.Classes = append(in.Rules.Classes, c)
		if !seen[c] {
			seen[c] = true
			if in.Summary != "" {
				in.Summary += ","
			}
			in.Summary += c
		}
		if st.Class == sqlclass.Unknown && !in.Unknown {
			in.Unknown = true
			in.FirstUnknown = lead(st.Text)
		}
		if (st.Command == "UPDATE" || st.Command == "DELETE") && !st.HasWhere {
			in.Rules.WithoutWhere = true
		}
	}
	return in
}

func lead(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

// Lines splits a newline-separated attribute, such as principal.groups.
func Lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
