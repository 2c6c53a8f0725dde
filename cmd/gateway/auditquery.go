package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/examples/queries"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
)

const paramHelp = `Parameters: a query names them {name:Type} (String, DateTime, Date,
UUID, Int*/UInt*, Float64), and --param name=value gives each one. The
gateway binds them itself as typed literals (a string is escaped, a
number or a time is parsed first), because ClickHouse 18.16 has no
server-side parameters: a value never becomes SQL. A DateTime is RFC
3339, '2026-12-07 21:00:00' or 2026-12-07 (UTC), now, or a duration back
from now (-24h). A missing parameter, or one the query does not use, is
an error naming it. -- and /* */ comments are allowed anywhere.

Rows reach the store in batches, about a second (batch_age) after the
request: a query right after a request may not see it yet.`

// paramsFlag collects repeated --param name=value.
type paramsFlag map[string]string

func (p paramsFlag) String() string { return "" }
func (p paramsFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if _, dup := p[name]; dup {
		return fmt.Errorf("parameter %s given twice", name)
	}
	p[name] = value
	return nil
}

// sqlArgs separates an analyst's SQL from the flags: a statement that
// begins with a comment ("-- what this answers") starts with "-" like a
// flag, and the flag package would refuse it. No flag has a blank in its
// name, so an argument that begins with "-" and holds a blank or a line
// break before any "=" is SQL (-name=value with a blank in the value is
// still a flag).
func sqlArgs(args []string) (flags []string, sql string, found bool) {
	for i, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if strings.HasPrefix(a, "-") && strings.ContainsAny(name, " \t\r\n") {
			return append(append([]string(nil), args[:i]...), args[i+1:]...), a, true
		}
	}
	return args, "", false
}

func cmdAuditQuery(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit query", `Usage: gateway audit query [-c gateway.toml] NAME [--param name=value ...] [--format table|tsv|json]
       gateway audit query --list

Runs one of the analyst queries shipped in the binary (the files of
examples/queries/, whose README.md documents every column) on the
clickhouse or embedded audit store. --list (or no NAME) lists them with
their parameters; --show prints one's SQL.

`+paramHelp, stderr)
	path := configFlag(fs)
	format := fs.String("format", "table", "table, tsv or json")
	params := paramsFlag{}
	fs.Var(params, "param", "a parameter, name=value (repeat for each)")
	list := fs.Bool("list", false, "list the shipped queries and their parameters")
	show := fs.Bool("show", false, "print the query's SQL instead of running it")
	name, err := parseNamed(fs, args)
	if err != nil {
		return err
	}
	if *list || name == "" {
		return listQueries(stdout)
	}
	sql, err := queries.Get(name)
	if err != nil {
		return fmt.Errorf("audit query: %w", err)
	}
	if *show {
		fmt.Fprint(stdout, sql)
		return nil
	}
	bound, err := sqlparam.Bind(sql, params, time.Now())
	if err != nil {
		return fmt.Errorf("audit query %s: %w", name, err)
	}
	return runAuditQuery(fs, *path, *format, stdout, analystSQL(bound))
}

// listQueries prints each shipped query's name, parameters and summary.
func listQueries(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPARAMETERS\tANSWERS")
	for _, n := range queries.Names() {
		sql, err := queries.Get(n)
		if err != nil {
			return err
		}
		ps, err := sqlparam.Params(sql)
		if err != nil {
			return fmt.Errorf("audit query %s: %w", n, err)
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.Name+":"+p.Type)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, strings.Join(names, " "), queries.Summary(sql))
	}
	return tw.Flush()
}

// readSQLFile reads -f: a file, or standard input for "-".
func readSQLFile(path string) (string, error) {
	if path == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return "", fmt.Errorf("audit sql: reading standard input: %w", err)
		}
		return string(b), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("audit sql: %w", err)
	}
	return string(b), nil
}
