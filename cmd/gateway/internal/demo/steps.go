package demo

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate-dev/tollgate/host/config"
)

// MakeCredentials writes, for `serve --dev`, each credential file the
// demo needs that does not exist yet: [dev] echo_token and the password
// of the [dev] postgres target (24 random bytes, base64, mode 0600). A
// fresh checkout then starts with nothing to prepare; a file that exists
// is left as it is. It returns the files it wrote.
func MakeCredentials(cfg *config.Config) ([]string, error) {
	if cfg.Dev == nil {
		return nil, nil
	}
	refs := []config.Secret{cfg.Dev.EchoToken}
	if t := DatabaseTarget(cfg); t != nil {
		refs = append(refs, t.Credential.Password)
	}
	var made []string
	for _, s := range refs {
		rest, ok := strings.CutPrefix(s.Ref, "file:")
		if !ok || rest == "" {
			continue // env: references are the operator's to set
		}
		path := cfg.Path(rest)
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return made, fmt.Errorf("demo credential: %w", err)
		}
		b := make([]byte, 24)
		rand.Read(b)
		// O_EXCL: two gateways starting at once keep the first one's.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return made, fmt.Errorf("demo credential: %w", err)
		}
		_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(b))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return made, fmt.Errorf("demo credential %s: %w", rest, err)
		}
		made = append(made, rest)
	}
	return made, nil
}

// DatabaseTarget is the target [dev] postgres names, or nil.
func DatabaseTarget(cfg *config.Config) *config.Target {
	if cfg.Dev == nil || cfg.Dev.Postgres == "" {
		return nil
	}
	for i := range cfg.Targets {
		if cfg.Targets[i].Name == cfg.Dev.Postgres {
			return &cfg.Targets[i]
		}
	}
	return nil
}

// Steps are what the quick start prints for the demo database.
type Steps struct {
	Gateway string   // how to run this binary, e.g. ./bin/gateway
	Config  string   // -c
	Listen  string   // the postgres listener's address
	Target  string   // the demo database's target name
	Console string   // the approval console's URL
	Groups  []string // the admin groups, which read the audit trail
}

// Print writes the walkthrough: the masked query, the refused DROP, the
// held DELETE and how to approve it, and the audit query that shows it all.
func (s Steps) Print(w io.Writer) {
	host, port, _ := net.SplitHostPort(s.Listen)
	psql := fmt.Sprintf(`PGPASSWORD=$TOKEN psql "host=%s port=%s dbname=%s user=agent sslmode=require"`, host, port, s.Target)
	fmt.Fprintf(w, "\nThe demo database (tables customers and api_keys) through the gateway:\n\n")
	fmt.Fprintf(w, "  # the e-mails and api_keys.secret come back masked\n")
	fmt.Fprintf(w, "  %s -c %q\n", psql, MaskedQuery)
	fmt.Fprintf(w, "  # the guard plugin refuses a DROP\n")
	fmt.Fprintf(w, "  %s -c %q\n", psql, DropStatement)
	fmt.Fprintf(w, "  # a DELETE waits for a person: psql prints the approval's ID and URL, and waits\n")
	fmt.Fprintf(w, "  %s -c %q\n", psql, DeleteStatement)
	fmt.Fprintf(w, "\nDecide in a third terminal, as a DBA (or in the console, %s, signed in with that token):\n\n", s.Console)
	groups := ""
	for _, gr := range append([]string{ApproverGroup}, s.Groups...) {
		groups += " --group " + gr
	}
	fmt.Fprintf(w, "  export TOLLGATE_TOKEN=$(%s token -c %s --sub dba@example.com%s)\n", s.Gateway, s.Config, groups)
	fmt.Fprintf(w, "  %s approvals list -c %s\n", s.Gateway, s.Config)
	fmt.Fprintf(w, "  %s approvals approve -c %s ID    # ID: from psql's NOTICE or the list\n", s.Gateway, s.Config)
	fmt.Fprintf(w, "\nand read all of it in the audit trail (rows land within about a second):\n\n")
	fmt.Fprintf(w, "  %s audit sql -c %s %q\n", s.Gateway, s.Config, AuditQuery(s.Target))
	fmt.Fprintf(w, "  %s audit verify -c %s\n\n", s.Gateway, s.Config)
}

// AuditQuery lists the demo database's statements and approval steps,
// with what the plugins decided and what was masked.
func AuditQuery(target string) string {
	return "SELECT kind, subject, request_values[indexOf(request_keys, 'sql')] AS sql, verdict, plugin, reason, status, approver, " +
		"arrayFilter(x -> x LIKE 'detect.%' OR x LIKE 'mask.sensitive=%', arrayMap((k, v) -> concat(k, '=', v), annotation_keys, annotation_values)) AS masked " +
		"FROM events FINAL WHERE target = '" + target + "' AND kind IN ('pg.query', 'approval.decision') ORDER BY ts, ts_us"
}
