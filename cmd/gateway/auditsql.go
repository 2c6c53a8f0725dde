package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/config"
)

func cmdAuditSQL(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit sql", `Usage: gateway audit sql [-c gateway.toml] [--format table|tsv|json] "SELECT ..."

Runs one read-only statement (SELECT, SHOW, DESCRIBE, EXISTS) against the
clickhouse audit store and prints the result. The server enforces readonly.
examples/queries/ has the analyst's questions.`, stderr)
	path := configFlag(fs)
	format := fs.String("format", "table", "table, tsv or json")
	sql, err := positional(fs, args)
	if err != nil {
		return err
	}
	return runAuditQuery(fs, *path, sql, *format, stdout)
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
	cfg, err := loadConfig(fs, *path)
	if err != nil {
		return err
	}
	db := cfg.Audit.ClickHouse.Database
	sql := fmt.Sprintf("SELECT toString(session_id) AS session, opened_at, protocol, target, subject, "+
		"claim_values[indexOf(claim_keys, 'repository')] AS repository, claim_values[indexOf(claim_keys, 'run_id')] AS run_id, "+
		"if(closed = 1, status, 'open') AS status, last_seq AS rows FROM %s.sessions FINAL "+
		"WHERE opened_at >= now() - %d ORDER BY opened_at DESC LIMIT 1000", db, int64(since.Seconds()))
	return runAuditQuery(fs, *path, sql, *format, stdout)
}

func runAuditQuery(fs *flag.FlagSet, path, sql, format string, stdout io.Writer) error {
	if format != "table" && format != "tsv" && format != "json" {
		return fmt.Errorf("--format must be table, tsv or json")
	}
	cfg, err := loadConfig(fs, path)
	if err != nil {
		return err
	}
	if cfg.Audit.Store != "clickhouse" {
		return errors.New("audit sql: the config's audit store is not clickhouse (the file store is JSON lines: use jq)")
	}
	if err := cfg.ResolveSecrets(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := openAuditStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	cols, rows, err := store.Query(ctx, sql)
	if err != nil {
		return err
	}
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

// openAuditStore connects to the config's clickhouse store (no pipeline:
// for the CLI's queries).
func openAuditStore(ctx context.Context, cfg *config.Config) (*clickhouse.Store, error) {
	a := cfg.Audit.ClickHouse
	o := clickhouse.Options{Addrs: a.Addrs, Database: a.Database, User: a.User, Password: a.Password.Value(), Cluster: a.Cluster}
	if a.TLS {
		tc, err := auditTLS(cfg)
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	return clickhouse.Open(ctx, o)
}

// clickhouseRows reads the events of one session (or all) for verify.
func clickhouseRows(cfg *config.Config, session string) ([]audit.Row, error) {
	if err := cfg.ResolveSecrets(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := openAuditStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if session != "" {
		return store.Rows(ctx, "session_id = toUUID(?)", session)
	}
	return store.Rows(ctx, "")
}
