package sqlref

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Column is a resolved sensitive column: exact catalog names.
type Column struct{ Schema, Table, Column string }

func (c Column) String() string { return c.Schema + "." + c.Table + "." + c.Column }

// Use says how a statement uses a sensitive column other than as a plain
// top-level output column.
type Use string

// The uses. Maskable ones reach the client only through output columns
// PostgreSQL reports without a sensitive origin (computed columns, 0/0) or
// through columns it reports with the origin (masked by it); Oracle ones
// steer which rows come back without returning the value. The rest store,
// export or run the value where the gateway cannot follow it.
const (
	UseExpression   Use = "expression"    // in a function call, operator, cast, CASE... of an output column
	UseAggregate    Use = "aggregate"     // in an aggregate or window function's arguments
	UseWholeRow     Use = "whole-row"     // t, t.*, to_jsonb(t), t::text...
	UseSubquery     Use = "subquery"      // anywhere in a subquery, CTE or LATERAL, even a plain target
	UseSetOperation Use = "set-operation" // in a UNION/INTERSECT/EXCEPT branch: no origin is reported
	UseColumnAlias  Use = "column-alias"  // a column alias list over a sensitive table, subquery or CTE
	UseReturning    Use = "returning"     // RETURNING of a data-modifying statement inside a CTE
	UsePredicate    Use = "predicate"     // WHERE, HAVING, JOIN ON/USING, FILTER, LIMIT, IN/EXISTS tests
	UseOrdering     Use = "ordering"      // ORDER BY, GROUP BY, DISTINCT ON, window PARTITION/ORDER BY
	UseCopy         Use = "copy"          // COPY table TO (no RowDescription), COPY (query) TO a file
	UseInsert       Use = "insert-select" // the value is stored by INSERT (SELECT, VALUES, ON CONFLICT)
	UseUpdate       Use = "update"        // the value is stored by UPDATE SET or MERGE
	UseCreateAs     Use = "create-as"     // CREATE TABLE AS, SELECT INTO, CREATE [MATERIALIZED] VIEW
	UseDDL          Use = "ddl"           // other utility statements on the table or its columns
	UseSideEffect   Use = "side-effect"   // passed to set_config, pg_notify, lo_from_bytea... (read back later)
	UseDynamicSQL   Use = "dynamic-sql"   // SQL run from text: DO, function bodies, query_to_xml, dblink...
	UseStatistics   Use = "statistics"    // pg_stats and friends expose sampled values
)

// Maskable reports whether masking every computed output column of the
// statement keeps the value from the client. Its error and notice texts
// too: a failing cast or function echoes its input (secret::int fails with
// the value in the message), so the gateway must redact those for such a
// statement.
func (u Use) Maskable() bool {
	switch u {
	case UseExpression, UseAggregate, UseWholeRow, UseSubquery, UseSetOperation, UseColumnAlias, UseReturning:
		return true
	}
	return false
}

// Oracle reports whether the value only steers which rows come back.
func (u Use) Oracle() bool { return u == UsePredicate || u == UseOrdering }

// Finding is one use of a sensitive column that is not a plain top-level
// output column.
type Finding struct {
	Column Column
	Use    Use
}

func (f Finding) String() string { return string(f.Use) + " of " + f.Column.String() }

// Analysis of one query string, which may hold several statements.
type Analysis struct {
	// Findings, sorted and without duplicates. Shared with the cache:
	// read it, do not modify it (its capacity equals its length, so an
	// append copies).
	Findings []Finding
	// Direct: some top-level output column may be a direct sensitive
	// column (a plain reference, or * or t.* over a sensitive table), so
	// the gateway must mask by origin.
	Direct bool
}

// ErrNotUTF8 is returned for text that is not valid UTF-8: the analysis
// assumes client_encoding UTF8.
var ErrNotUTF8 = errors.New("sqlref: statement is not valid UTF-8")

// Policy is one target's sensitive columns, with a cache of analyses. It
// is safe for concurrent use.
type Policy struct {
	tables []table
	// byName maps a column name to the sensitive columns so named.
	byName map[string][]namedCol
	// needles are what the prefilter looks for, lower case; needleCols
	// maps a table's or column's name to its columns (the other needles
	// stand for every column).
	needles    []string
	needleCols map[string][]Column
	nonASCII   bool
	cache      *cache
}

type namedCol struct {
	Column
	t int // index in Policy.tables
}

type table struct {
	schema, name string
	cols         []Column
}

// Functions that run a string as a query or dump tables named by a string,
// an OID or nothing at all: concatenation defeats a look at their strings,
// so any call is a finding for every sensitive column.
var opaqueFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xml_and_xmlschema": true, "query_to_xmlschema": true,
	"table_to_xml": true, "table_to_xml_and_xmlschema": true, "table_to_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
	"schema_to_xml": true, "schema_to_xml_and_xmlschema": true, "schema_to_xmlschema": true,
	"database_to_xml": true, "database_to_xml_and_xmlschema": true, "database_to_xmlschema": true,
	"dblink": true, "dblink_exec": true, "dblink_open": true, "dblink_send_query": true,
	"dblink_fetch": true, "dblink_get_result": true,
	"ts_stat": true, "crosstab": true, "crosstab2": true, "crosstab3": true, "crosstab4": true, "connectby": true,
}

// Relations that expose sampled column values.
var statsRelations = map[string]bool{
	"pg_stats": true, "pg_statistic": true, "pg_stats_ext": true, "pg_stats_ext_exprs": true,
	"pg_statistic_ext_data": true,
}

// NewPolicy builds the policy of one target. Duplicates are ignored.
func NewPolicy(cols []Column) *Policy {
	p := &Policy{byName: map[string][]namedCol{}, needleCols: map[string][]Column{},
		cache: newCache(cacheEntries, cacheBytes)}
	seen := map[Column]bool{}
	needles := map[string]bool{"u&": true, "pg_stat": true, "_to_xml": true, "dblink": true,
		"ts_stat": true, "crosstab": true, "connectby": true}
	for _, c := range cols {
		if seen[c] {
			continue
		}
		seen[c] = true
		i := slices.IndexFunc(p.tables, func(t table) bool { return t.schema == c.Schema && t.name == c.Table })
		if i < 0 {
			p.tables = append(p.tables, table{schema: c.Schema, name: c.Table})
			i = len(p.tables) - 1
		}
		p.tables[i].cols = append(p.tables[i].cols, c)
		p.byName[c.Column] = append(p.byName[c.Column], namedCol{c, i})
		for _, n := range []string{asciiLower(c.Table), asciiLower(c.Column)} {
			needles[n] = true
			p.needleCols[n] = append(p.needleCols[n], c)
		}
		if !isASCII(c.Table) || !isASCII(c.Column) {
			p.nonASCII = true
		}
	}
	for n := range needles {
		p.needles = append(p.needles, n)
	}
	slices.Sort(p.needles)
	return p
}

// Analyze finds the uses of sensitive columns in sql. An error means the
// parser refused the text (or it is not UTF-8); the gateway should then
// refuse the statement itself rather than let the server judge it, since
// only text that mentions a sensitive name gets this far and the server's
// grammar (15) is not the parser's (17).
func (p *Policy) Analyze(sql string) (Analysis, error) {
	if len(p.tables) == 0 || !p.mayMatch(sql) {
		return Analysis{}, nil
	}
	if r, ok := p.cache.get(key{s: sql}); ok {
		return r.a, r.err
	}
	if !utf8.ValidString(sql) {
		return Analysis{}, ErrNotUTF8
	}
	// Literals normalized: a statement repeated with other constants
	// costs Normalize and a lookup, not a parse. Only analyses that never
	// looked at a constant are stored under that key.
	norm, nerr := pg_query.Normalize(sql)
	if nerr == nil && norm != sql {
		if r, ok := p.cache.get(key{norm: true, s: norm}); ok {
			p.cache.put(key{s: sql}, r)
			return r.a, r.err
		}
	}
	a, literal, err := p.analyze(sql)
	r := result{a: a, err: err}
	p.cache.put(key{s: sql}, r)
	if err == nil && nerr == nil && !literal && norm != sql {
		p.cache.put(key{norm: true, s: norm}, r)
	}
	return a, err
}

// analyze parses and walks sql; literal reports whether the result
// depends on a constant's value.
func (p *Policy) analyze(sql string) (Analysis, bool, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return Analysis{}, false, fmt.Errorf("sqlref: parse: %w", err)
	}
	w := walker{p: p, found: map[Finding]bool{}}
	for _, rs := range tree.Stmts {
		w.statement(rs.Stmt)
	}
	a := Analysis{Direct: w.direct}
	for f := range w.found {
		a.Findings = append(a.Findings, f)
	}
	slices.SortFunc(a.Findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Column.Schema, y.Column.Schema), cmp.Compare(x.Column.Table, y.Column.Table),
			cmp.Compare(x.Column.Column, y.Column.Column), cmp.Compare(x.Use, y.Use))
	})
	a.Findings = a.Findings[:len(a.Findings):len(a.Findings)]
	return a, w.literal, nil
}

// mayMatch is the prefilter: false when no sensitive name, no unicode
// escape (U&"\0073ecret") and no opaque function could be in sql. Under
// client_encoding UTF8 PostgreSQL folds only ASCII letters, so a non-ASCII
// byte can spell a name only if the name itself has one.
func (p *Policy) mayMatch(sql string) bool {
	if p.nonASCII && !isASCII(sql) {
		return true
	}
	return len(p.mentions(sql, true)) > 0
}

// mentions returns the needles found in s, case-insensitively; with first
// it stops at the first.
func (p *Policy) mentions(s string, first bool) []string {
	low := s
	if hasUpper(s) {
		// Folded into a pooled buffer: the prefilter runs on every
		// statement and should not allocate.
		bp := lowerBufs.Get().(*[]byte)
		defer lowerBufs.Put(bp)
		b := append((*bp)[:0], s...)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		*bp = b
		low = unsafe.String(unsafe.SliceData(b), len(b))
	}
	var out []string
	for _, n := range p.needles {
		if strings.Contains(low, n) {
			out = append(out, n)
			if first {
				break
			}
		}
	}
	return out
}

var lowerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLower folds ASCII letters only, as PostgreSQL folds identifiers.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
