// Package sqlref finds the uses of sensitive columns in SQL text that
// masking by origin cannot cover.
//
// The gateway masks a plain output column by the table OID and attribute
// number PostgreSQL reports for it in RowDescription, so an alias does not
// hide it. Every other use of a sensitive column (inside an expression, a
// predicate, an aggregate, a subquery, a write, a whole-row value, a string
// of SQL run elsewhere...) is a Finding, and the gateway refuses the
// statement, or, for a column declared derived = "mask", masks every
// computed output column instead when all its findings are Maskable or
// Oracle uses.
//
// The analysis is syntactic, on the tree of PostgreSQL's own parser
// (libpg_query through github.com/pganalyze/pg_query_go/v6, PostgreSQL 17's
// grammar), and name-based, since a raw parse tree has no catalog: a
// statement is in scope of a sensitive table when a RangeVar names it
// (schema-qualified or not: an unqualified name matches any schema because
// search_path can change), and then any ColumnRef whose last field equals a
// sensitive column's name of an in-scope table counts, whatever relation it
// is qualified with. It errs towards findings.
//
// What a plain top-level column is (verified against PostgreSQL 15 by
// TestRowDescriptionOrigins, which runs in this package's tests):
//
//   - A direct column reports its table OID and attribute number, also
//     through an alias, a subquery alias, a CTE (materialized or not), a
//     LATERAL subquery and a column alias list (FROM t AS k(a, b, c)).
//   - A view's column reports the view's OID and attribute number, not the
//     base table's: views over sensitive tables must be declared too.
//   - A column of a set operation (UNION, INTERSECT, EXCEPT), also through a
//     subquery over it, reports no origin (0/0), whichever branch it comes
//     from: a sensitive column in a branch is a finding ("set-operation").
//   - A whole-row reference (SELECT k FROM t k) reports the table's OID with
//     attribute number 0; it is a finding here all the same.
//   - RETURNING of INSERT, UPDATE and DELETE reports origins like a SELECT,
//     so a top-level RETURNING list is treated as a top-level target list;
//     a RETURNING inside a CTE is a finding ("returning"), though the outer
//     SELECT of the CTE's column reports the origin too.
//   - FETCH from a cursor reports the origins of the cursor's query, and
//     EXECUTE those of the prepared statement: the queries of DECLARE CURSOR
//     and PREPARE are analysed as top-level statements.
//   - A scalar subquery, an expression and VALUES report no origin.
//
// What it does not see: SQL run from text it cannot read (a DO block or a
// function body that spells a name by concatenation, EXECUTE format(...),
// functions created earlier), server-side objects that read sensitive
// tables (views, functions, rules, triggers: the catalog resolution must
// cover them), and oracles that need no column reference (a unique
// constraint violation on INSERT, ON CONFLICT, row counts of a table).
//
// The text is lexed as PostgreSQL does with client_encoding UTF8 and
// standard_conforming_strings on: the gateway must only trust an Analysis
// for sessions in that state, since a multi-byte client encoding (SJIS,
// BIG5, GBK...) or backslash-escaped quotes change where strings end.
package sqlref
