//go:build wasip1

// Command after-hours is an example Tollgate plugin: outside business
// hours it holds an UPDATE, DELETE, MERGE or TRUNCATE on the tables the
// config lists for a person's approval.
//
// It matches tables as written in the SQL text, conservatively: a listed
// name anywhere in the statement as a word (quoted, schema-qualified, in
// a CTE or a subquery, in any letter case) counts, and so does a
// statement the host cannot classify (DO, EXECUTE, CALL) or a Unicode
// escape, which could spell a name. A view or function that writes the
// table under another name is not seen: list it too.
package main

import (
	"strings"
	"time"
	_ "time/tzdata" // the sandbox has no zoneinfo files

	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Tables    []string `json:"tables" tollgate:"required"` // table names, without schema
	Timezone  string   `json:"timezone"`                   // IANA zone of the business hours; default UTC
	Days      []string `json:"days"`                       // default Mon..Fri
	Start     string   `json:"start"`                      // "09:00" (default)
	End       string   `json:"end"`                        // "18:00" (default)
	Approvers []string `json:"approvers"`                  // groups that may approve
}

var (
	zone       = time.UTC
	days       = map[time.Weekday]bool{}
	start, end int // minutes after midnight
)

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("after-hours: config: " + err.Error())
	}
	if cfg.Timezone != "" {
		z, err := time.LoadLocation(cfg.Timezone)
		if err != nil {
			panic("after-hours: timezone: " + err.Error())
		}
		zone = z
	}
	if len(cfg.Days) == 0 {
		cfg.Days = []string{"Mon", "Tue", "Wed", "Thu", "Fri"}
	}
	names := map[string]time.Weekday{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
	for _, d := range cfg.Days {
		wd, ok := names[strings.ToLower(d)]
		if !ok {
			panic("after-hours: days: " + d + " is not Mon, Tue, ... Sun")
		}
		days[wd] = true
	}
	start, end = clock(cfg.Start, 9*60), clock(cfg.End, 18*60)
	for i, t := range cfg.Tables {
		cfg.Tables[i] = strings.ToLower(t)
	}
	sdk.Subscribe("pg.query")
	sdk.HandleEvent(decide)
}

// clock parses "HH:MM".
func clock(s string, def int) int {
	if s == "" {
		return def
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		panic("after-hours: " + s + " is not HH:MM")
	}
	return t.Hour()*60 + t.Minute()
}

func businessHours(now time.Time) bool {
	now = now.In(zone)
	m := now.Hour()*60 + now.Minute()
	return days[now.Weekday()] && m >= start && m < end
}

func decide(ev sdk.Event) sdk.Verdict {
	writes := false
	for _, st := range ev.Statements("sql") {
		switch st.Command {
		case "UPDATE", "DELETE", "MERGE", "TRUNCATE":
			writes = true
		}
		if st.Class == "unknown" {
			writes = true
		}
	}
	sql := strings.ToLower(ev.Field("sql"))
	if !writes && strings.Contains(sql, "do update") && strings.Contains(sql, "on conflict") {
		writes = true // INSERT ... ON CONFLICT DO UPDATE updates
	}
	if !writes {
		return sdk.Allow()
	}
	table := mentioned(sql)
	if table == "" || businessHours(ev.Time()) {
		return sdk.Allow()
	}
	sdk.Annotate("after-hours.table", table)
	return sdk.Hold("a write to "+table+" outside business hours needs an approval", cfg.Approvers...)
}

// mentioned is the first listed table the lower-cased SQL names as a
// word, or "?" for a Unicode escape (U&"..."), which could spell one.
func mentioned(sql string) string {
	if strings.Contains(sql, `u&"`) {
		return "?"
	}
	for _, t := range cfg.Tables {
		for i := 0; ; {
			j := strings.Index(sql[i:], t)
			if j < 0 {
				break
			}
			j += i
			if (j == 0 || !word(sql[j-1])) && (j+len(t) == len(sql) || !word(sql[j+len(t)])) {
				return t
			}
			i = j + 1
		}
	}
	return ""
}

func word(b byte) bool {
	return b == '_' || b == '$' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80
}

func main() {}
