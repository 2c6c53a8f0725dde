package main

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/host/config"
)

const auditUsage = `Usage: gateway audit <verify|sql|query|sessions|tail> ...

  gateway audit verify [--session ID | --since 24h|T] [--file audit.jsonl]
      check every session's hash chain (any store)
  gateway audit sql [--format table|tsv|json] [--param name=value ...] "SELECT ..." | -f FILE
      run read-only analyst SQL (clickhouse or embedded store); {name:Type}
      placeholders are bound from --param as typed, escaped literals
  gateway audit query [NAME] [--param name=value ...]
      run a shipped analyst query (examples/queries, in the binary); no NAME
      lists them: activity, ci_run, denied_or_held, masked, masking_by_detector,
      open_sessions, principal, slowest_approvals, top_statements,
      who_ran_what. Columns: examples/queries/README.md.
      Rows land about a second (batch_age) after the request.
  gateway audit sessions [--since 24h]
      list recent sessions (clickhouse or embedded store)
  gateway audit tail [--target T] [--principal P]
      follow new rows (clickhouse or embedded store)`

func cmdAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, auditUsage)
		return nil
	case "sql":
		return cmdAuditSQL(args[1:], stdout, stderr)
	case "query":
		return cmdAuditQuery(args[1:], stdout, stderr)
	case "sessions":
		return cmdAuditSessions(args[1:], stdout, stderr)
	case "tail":
		return cmdAuditTail(args[1:], stdout, stderr)
	case "verify":
	default:
		fmt.Fprintf(stderr, "gateway audit: unknown command %q\n\n%s\n", args[0], auditUsage)
		return errUsage
	}
	fs := newFlags("audit verify", `Usage: gateway audit verify [-c gateway.toml] [--session ID | --since T] [--file audit.jsonl] [--public-key key.pem]

Checks the audit trail (the file or the clickhouse store, as the config
says, or --file) and prints one line per session and per gateway run's
checkpoint chain.

Sessions: complete; open (never closed: the gateway stopped before it
could close it, after its last checkpoint; not tampering); gap (a row is
missing); edited (a row no longer matches its hash, or not the row a
checkpoint saw); reordered (a row does not follow the one before it);
truncated (the rows end before the last row a checkpoint saw); deleted (a
checkpoint lists the session, no row is left); uncheckpointed (rows a
clean shutdown's final checkpoint should list and does not: added later);
bad-signature and unsigned (with a key). Rows recorded in minimal form
because the audit spool was full (requests refused, or rows cut, while the
audit store was away) are an outage the trail states, not tampering: the
session stays complete (or open), its line counts them, and a summary goes
to stderr.

Checkpoint chains (one per gateway run): complete (ended by a clean
shutdown); open (the gateway was killed, or still runs); checkpoint-gap,
checkpoint-edited, checkpoint-missing (a checkpoint the next run links to
is gone), checkpoint-bad-signature and checkpoint-unsigned.

Exits 1 when anything shows tampering. --since limits the check to the
sessions opened in a window (24h) or since a time (RFC 3339); every
checkpoint is read either way. The key comes from --public-key (a public
or the private PEM) or the config's signing_key, with --file too.`, stderr)
	path := configFlag(fs)
	only := fs.String("session", "", "verify only this session")
	sinceText := fs.String("since", "", "verify only sessions opened since this time (RFC 3339) or in this window (e.g. 24h)")
	file := fs.String("file", "", "the JSON-lines audit file (default: the config's [audit] path)")
	pubFile := fs.String("public-key", "", "require signed close rows and checkpoints by this Ed25519 key (PEM, public or private; default: the config's signing_key, if any)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	since, err := parseSince(*sinceText, time.Now())
	if err != nil {
		return err
	}
	var rows []audit.Row
	var key ed25519.PublicKey
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		if key, err = audit.ParsePublicKey(b); err != nil {
			return err
		}
	}
	// With --file the config is optional: it is read when it was named
	// or is there, for its signing key.
	var cfg *config.Config
	switch {
	case *file == "" || flagSet(fs, "c"):
		if cfg, err = loadConfig(fs, *path); err != nil {
			return err
		}
	case fileExists(*path):
		if cfg, err = loadConfig(fs, *path); err != nil {
			fmt.Fprintf(stderr, "audit verify: %s not read (%v): no signing key from it\n", *path, err)
			cfg = nil
		}
	}
	if cfg != nil && key == nil && cfg.Audit.SigningKey.IsSet() {
		if err := cfg.ResolveAuditSecrets(); err != nil {
			return err
		}
		if key, err = audit.ParsePublicKey([]byte(cfg.Audit.SigningKey.Value())); err != nil {
			return err
		}
	}
	scope := trail.Scope{Session: *only, Since: since}
	if *file == "" {
		switch cfg.Audit.Store {
		case "file":
			*file = cfg.DataPath(cfg.Audit.Path)
		case "clickhouse", "embedded":
			if rows, err = storeRows(cfg, scope); err != nil {
				return err
			}
		default:
			return fmt.Errorf("audit verify: store %q is not readable by this build", cfg.Audit.Store)
		}
	}
	if *file != "" {
		if rows, err = trail.ReadFile(*file, *only); err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		rows = trail.OpenedSince(rows, since)
	}
	rep := trail.Verify(rows, scope, key)
	for _, f := range rep.Findings {
		if f.Checkpoints {
			fmt.Fprintf(stdout, "%s\t%s\t%d checkpoints\tgateway %s", f.SessionID, f.Status, f.Rows, f.GatewayID)
		} else {
			fmt.Fprintf(stdout, "%s\t%s\t%d rows", f.SessionID, f.Status, f.Rows)
		}
		if f.Detail != "" {
			fmt.Fprintf(stdout, "\t%s", f.Detail)
		}
		fmt.Fprintln(stdout)
	}
	if rep.MinimalRows > 0 {
		// Not tampering: each such row is in its chain and hashed; it
		// only carries less than a full row would.
		fmt.Fprintf(stderr, "audit verify: %d rows in %d sessions are minimal because the audit spool was full (the audit store was away): an outage, stated in the trail, not tampering\n", rep.MinimalRows, rep.MinimalSessions)
	}
	if rep.Tampered {
		return errReported
	}
	return nil
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// parseSince reads --since: empty (no limit), a duration back from now,
// or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 24h or an RFC 3339 time such as 2026-11-26T08:00:00Z", v)
	}
	return t, nil
}
