package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
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
      lists them: ci_run, denied_or_held, masked, open_sessions, principal,
      slowest_approvals, who_ran_what. Columns: examples/queries/README.md.
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
	var vo audit.VerifyOptions
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		if vo.PublicKey, err = audit.ParsePublicKey(b); err != nil {
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
	if cfg != nil && vo.PublicKey == nil && cfg.Audit.SigningKey.IsSet() {
		if err := cfg.ResolveAuditSecrets(); err != nil {
			return err
		}
		if vo.PublicKey, err = audit.ParsePublicKey([]byte(cfg.Audit.SigningKey.Value())); err != nil {
			return err
		}
	}
	if *file == "" {
		switch cfg.Audit.Store {
		case "file":
			*file = cfg.DataPath(cfg.Audit.Path)
		case "clickhouse", "embedded":
			if rows, err = clickhouseRows(cfg, *only, since); err != nil {
				return err
			}
		default:
			return fmt.Errorf("audit verify: store %q is not readable by this build", cfg.Audit.Store)
		}
	}
	if *file != "" {
		var err error
		if rows, err = readRows(*file, *only); err != nil {
			return err
		}
		rows = openedSince(rows, since)
	}
	switch {
	case *only != "":
		vo.InScope = func(sid string, _ time.Time, _ time.Duration) bool { return sid == *only }
	case !since.IsZero():
		// A session is listed at most an interval after its first row:
		// one first listed later than that past since opened after it.
		vo.InScope = func(_ string, listedAt time.Time, interval time.Duration) bool {
			return !listedAt.Before(since.Add(interval + time.Second))
		}
	}
	// With --since, a run's checkpoint chain is shown when the run wrote
	// in the window (older ones are read for their links and lists).
	lastCheckpoint := map[string]time.Time{}
	for _, r := range rows {
		if r.Kind == audit.KindCheckpoint && r.Time.After(lastCheckpoint[r.SessionID]) {
			lastCheckpoint[r.SessionID] = r.Time
		}
	}
	tampered := false
	minimal, outaged := 0, 0
	for _, f := range audit.VerifyWith(rows, vo) {
		if f.Minimal > 0 {
			minimal += f.Minimal
			outaged++
		}
		if last, ok := lastCheckpoint[f.SessionID]; f.Checkpoints && ok && !since.IsZero() && last.Before(since) {
			continue
		}
		if f.Checkpoints {
			fmt.Fprintf(stdout, "%s\t%s\t%d checkpoints\tgateway %s", f.SessionID, f.Status, f.Rows, f.GatewayID)
		} else {
			fmt.Fprintf(stdout, "%s\t%s\t%d rows", f.SessionID, f.Status, f.Rows)
		}
		if f.Detail != "" {
			fmt.Fprintf(stdout, "\t%s", f.Detail)
		}
		fmt.Fprintln(stdout)
		tampered = tampered || audit.Tampered(f.Status)
	}
	if minimal > 0 {
		// Not tampering: each such row is in its chain and hashed; it
		// only carries less than a full row would.
		fmt.Fprintf(stderr, "audit verify: %d rows in %d sessions are minimal because the audit spool was full (the audit store was away): an outage, stated in the trail, not tampering\n", minimal, outaged)
	}
	if tampered {
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

// openedSince keeps the rows of sessions whose first row is at or after
// since (all rows when since is zero). A session is checked whole or not
// at all: cutting it at a time would look like a gap.
func openedSince(rows []audit.Row, since time.Time) []audit.Row {
	if since.IsZero() {
		return rows
	}
	first := map[string]time.Time{}
	for _, r := range rows {
		if t, ok := first[r.SessionID]; !ok || r.Time.Before(t) {
			first[r.SessionID] = r.Time
		}
	}
	out := rows[:0]
	for _, r := range rows {
		// Checkpoints are kept whole: the part is checked against them.
		if r.Kind == audit.KindCheckpoint || !first[r.SessionID].Before(since) {
			out = append(out, r)
		}
	}
	return out
}

func readRows(path, session string) ([]audit.Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	var rows []audit.Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		r, err := audit.DecodeFileLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("audit verify: %s:%d: not an audit row: %w", path, line, err)
		}
		if session == "" || r.SessionID == session || r.Kind == audit.KindCheckpoint {
			rows = append(rows, r)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	return rows, nil
}
