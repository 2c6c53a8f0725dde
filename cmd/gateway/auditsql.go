package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/host/config"
)

func cmdAuditSQL(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit sql", `Usage: gateway audit sql [-c gateway.toml] [--format table|tsv|json] [--param name=value ...] "SELECT ..."
       gateway audit sql [-c gateway.toml] -f FILE [--param name=value ...]

Runs one read-only statement (SELECT, SHOW, DESCRIBE, EXISTS) against the
clickhouse or embedded audit store and prints the result. The server
enforces readonly. -f reads the statement from a file (- for standard
input). examples/queries/ has the analyst's questions, also shipped in
the binary: gateway audit query --list.

`+paramHelp, stderr)
	path := configFlag(fs)
	format := fs.String("format", "table", "table, tsv or json")
	file := fs.String("f", "", "read the statement from this file (- for standard input)")
	params := paramsFlag{}
	fs.Var(params, "param", "a parameter, name=value (repeat for each)")
	rest, sql, found := sqlArgs(args)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	pos := fs.Args()
	if !found && len(pos) > 0 {
		sql, pos = pos[0], pos[1:]
		found = true
		// Flags may follow the statement.
		if err := fs.Parse(pos); err != nil {
			return errUsage
		}
		pos = fs.Args()
	}
	switch {
	case len(pos) > 0:
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(pos, " "))
		return errUsage
	case *file != "" && found:
		fmt.Fprintln(stderr, "give the statement as an argument or with -f, not both")
		return errUsage
	case *file != "":
		var err error
		if sql, err = readSQLFile(*file); err != nil {
			return err
		}
	case !found:
		fmt.Fprintln(stderr, "expected a statement (or -f FILE)")
		return errUsage
	}
	bound, err := sqlparam.Bind(sql, params, time.Now())
	if err != nil {
		return fmt.Errorf("audit sql: %w", err)
	}
	return runAuditQuery(fs, *path, *format, stdout, analystSQL(bound))
}

// analystSQL runs a statement whose parameters sqlparam has bound.
func analystSQL(bound string) func(context.Context, *config.Config, reader) (trail.Table, error) {
	return func(ctx context.Context, _ *config.Config, r reader) (trail.Table, error) {
		cols, rows, err := r.Query(ctx, bound)
		return trail.Table{Columns: cols, Rows: rows}, err
	}
}

func cmdAuditSessions(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit sessions", `Usage: gateway audit sessions [-c gateway.toml] [--since 24h] [--format table|tsv|json]

Lists the sessions opened in the window, newest first, with who, where and
how they ended (clickhouse store).`, stderr)
	path := configFlag(fs)
	since := fs.Duration("since", 24*time.Hour, "how far back")
	format := fs.String("format", "table", "table, tsv or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	from := time.Now().Add(-*since)
	return runAuditQuery(fs, *path, *format, stdout, func(ctx context.Context, cfg *config.Config, r reader) (trail.Table, error) {
		tr, err := trail.New(r, auditDatabase(cfg))
		if err != nil {
			return trail.Table{}, err
		}
		return tr.Sessions(ctx, from)
	})
}

// runAuditQuery opens the config's store (or the running gateway's admin
// API), runs one read and prints its table in format.
func runAuditQuery(fs *flag.FlagSet, path, format string, stdout io.Writer, read func(context.Context, *config.Config, reader) (trail.Table, error)) error {
	if format != "table" && format != "tsv" && format != "json" {
		return fmt.Errorf("--format must be table, tsv or json")
	}
	cfg, err := loadConfig(fs, path)
	if err != nil {
		return err
	}
	if cfg.Audit.Store == "file" {
		return errors.New("audit sql: the config's audit store is not clickhouse (the file store is JSON lines: use jq)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := openReader(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	tb, err := read(ctx, cfg, store)
	if err != nil {
		return err
	}
	cols, rows := tb.Columns, tb.Rows
	switch format {
	case "json":
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			obj := make(map[string]string, len(cols))
			for i, c := range cols {
				obj[c] = r[i]
			}
			if err := enc.Encode(obj); err != nil {
				return err
			}
		}
	case "tsv":
		fmt.Fprintln(stdout, strings.Join(cols, "\t"))
		for _, r := range rows {
			fmt.Fprintln(stdout, strings.Join(r, "\t"))
		}
	default:
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "(%d rows)\n", len(rows))
	}
	return nil
}

// auditStore is what the CLI and the pipeline need from either store.
type auditStore interface {
	audit.Store
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
	Rows(ctx context.Context, where string, args ...any) ([]audit.Row, error)
}

// openAuditStore opens the config's clickhouse or embedded store (no
// pipeline). The embedded store's directory belongs to one process: while
// the gateway runs, CLI queries on it fail with a clear error.
func openAuditStore(ctx context.Context, cfg *config.Config) (auditStore, error) {
	if cfg.Audit.Store == "embedded" {
		e := cfg.Audit.Embedded
		return embedded.Open(ctx, embedded.Options{Dir: cfg.DataPath(e.Dir), Database: e.Database, LibPath: cfg.Path(e.LibPath)})
	}
	s, err := clickhouseStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// clickhouseStore is the [audit.clickhouse] store, not yet connected (see
// clickhouse.Connect).
func clickhouseStore(cfg *config.Config) (*clickhouse.Store, error) {
	a := cfg.Audit.ClickHouse
	o := clickhouse.Options{Addrs: a.Addrs, Database: a.Database, User: a.User, Password: a.Password.Value(), Cluster: a.Cluster}
	if a.TLS {
		tc, err := auditTLS(cfg)
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	return clickhouse.Connect(o)
}

// storeRows reads the rows verify checks in scope from the clickhouse or
// embedded store, or through the admin API of the gateway that owns it.
func storeRows(cfg *config.Config, scope trail.Scope) ([]audit.Row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := openReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	tr, err := trail.New(store, auditDatabase(cfg))
	if err != nil {
		return nil, err
	}
	rows, err := tr.VerifyRows(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	return rows, nil
}

// reader is the audit trail's read side, from the store itself or, when
// the running gateway owns the store, through its admin API.
type reader interface {
	trail.Reader
	Close() error
}

// openReader uses the admin API for the embedded store when [admin] is
// configured (chDB allows one process per directory, and the gateway is
// that process); otherwise it opens the store directly. The admin API
// needs a token: --token is not a flag here, so it comes from
// TOLLGATE_TOKEN.
func openReader(ctx context.Context, cfg *config.Config) (reader, error) {
	if cfg.Audit.Store == "embedded" && cfg.Admin.Listen != "" && gatewayRunning(ctx, cfg.Admin.Listen) {
		tok := os.Getenv("TOLLGATE_TOKEN")
		if tok == "" {
			return nil, errors.New("the running gateway owns the embedded store: set TOLLGATE_TOKEN to a token of one of the [admin] groups to query it through the admin API")
		}
		return adminReader{&admin.Client{URL: "http://" + cfg.Admin.Listen, Token: tok}}, nil
	}
	if err := cfg.ResolveAuditSecrets(); err != nil {
		return nil, err
	}
	s, err := openAuditStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return storeReader{trail.FromStore(s), s}, nil
}

// gatewayRunning reports whether the admin API answers: when the gateway is
// stopped, the CLI opens the embedded store itself.
func gatewayRunning(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// storeReader reads the store itself; Close closes the store.
type storeReader struct {
	trail.Reader
	io.Closer
}

// adminReader reads through the admin API of the gateway that owns the
// store; the trail's SQL arrives bound, so the API's SQL-only body fits.
type adminReader struct{ c *admin.Client }

func (a adminReader) Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error) {
	return a.c.Query(ctx, sql, args...)
}
func (a adminReader) SessionRows(ctx context.Context, session string) ([]audit.Row, error) {
	return a.c.Rows(ctx, session)
}
func (a adminReader) Close() error { return nil }

func cmdAuditTail(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit tail", `Usage: gateway audit tail [-c gateway.toml] [--target T] [--principal SUBJECT] [--since 5m]

Follows new audit rows in the clickhouse store, one line each: time,
session, kind, target, subject, request, verdict, status. Ctrl-C stops it.`, stderr)
	path := configFlag(fs)
	target := fs.String("target", "", "only this target")
	principal := fs.String("principal", "", "only this subject")
	since := fs.Duration("since", 5*time.Minute, "start this far back")
	every := fs.Duration("every", time.Second, "how often to poll")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *path)
	if err != nil {
		return err
	}
	if cfg.Audit.Store == "file" {
		return errors.New("audit tail: the config's audit store is not clickhouse (for the file store: tail -f the file)")
	}
	if err := cfg.ResolveAuditSecrets(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := openReader(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	tr, err := trail.New(store, auditDatabase(cfg))
	if err != nil {
		return err
	}
	f := tr.Follow(time.Now().Add(-*since), trail.Filter{Target: *target, Principal: *principal})
	for {
		events, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range events {
			fmt.Fprintf(stdout, "%s  %.8s  %-14s %-10s %-30s %-40s %s %s\n", e.Time.Format("2006-01-02 15:04:05.000000"),
				e.SessionID, e.Kind, e.Target, e.Subject, e.Request(), e.Verdict, e.Status)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

func auditDatabase(cfg *config.Config) string {
	if cfg.Audit.Store == "embedded" {
		return cfg.Audit.Embedded.Database
	}
	return cfg.Audit.ClickHouse.Database
}
