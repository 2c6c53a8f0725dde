package postgres

import (
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/protocols/postgres/internal/sqlref"
)

// analyzeSensitive finds, with PostgreSQL's own parser (internal/sqlref),
// the uses of sensitive columns that a RowDescription cannot show, and
// says why the statement is refused, or "". A column declared derived =
// "mask" may be used in ways masking every computed output column hides
// (an expression, an aggregate, a whole-row reference...) or as an oracle
// (a predicate); anything else (stored by INSERT ... SELECT, exported by
// COPY table, passed to set_config or pg_notify, run as dynamic SQL) is
// refused whatever the declaration says. PREPARE and DECLARE CURSOR are
// refused on any finding: the EXECUTE or FETCH that returns the rows does
// not name the column, so the gateway could not mask there.
func (s *session) analyzeSensitive(st *stmt, sql string, cat *catalog) string {
	a, err := cat.policy.Analyze(sql)
	if err != nil {
		// Only text that names a sensitive table or column gets parsed:
		// text the gateway cannot read is refused, not guessed at.
		why := err.Error()
		if errors.Is(err, sqlref.ErrNotUTF8) {
			why = "it is not valid UTF-8"
		}
		return "this statement names a sensitive table or column and the gateway could not read it to check how it uses them: " + why
	}
	if a.Direct || len(a.Findings) > 0 {
		st.sensitive = true
	}
	if len(a.Findings) == 0 {
		return ""
	}
	deferred := containsWordFold(sql, "prepare") || containsWordFold(sql, "declare")
	var refused []string
	seen := map[string]bool{}
	for _, f := range a.Findings {
		c := cat.byRef[f.Column]
		if c != nil && c.mask && !deferred && (f.Use.Maskable() || f.Use.Oracle()) {
			if f.Use.Maskable() {
				st.maskComputed = true
			}
			continue
		}
		if r := string(f.Use) + " of " + f.Column.String(); !seen[r] {
			seen[r] = true
			refused = append(refused, r)
		}
	}
	if len(refused) == 0 {
		if st.maskComputed {
			st.annot = append(st.annot, event.Annotation{Key: "mask.derived", Value: "computed columns masked"})
		}
		return ""
	}
	return "the statement uses a sensitive column other than as a plain output column (" + strings.Join(refused, "; ") +
		"): refused by the gateway; select the column itself to get it masked"
}
