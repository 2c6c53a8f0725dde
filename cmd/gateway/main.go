// Command gateway is Tollgate: an access gateway that lets AI agents in
// CI/CD pipelines reach infrastructure with an OIDC token instead of a
// shared secret, and records every step they take.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `Tollgate: an access gateway for AI agents in CI/CD pipelines.

Usage:
  gateway <command> [flags]

Commands:
  serve     start every listener in the config
  check     validate the config
  token     mint a token from the development issuer
  plugin    scaffold, build and test plugins (new, build, test)
  audit     read and check the audit trail (sql, query, sessions, tail, verify)
  approvals list, show, approve and deny held requests
  replay    play a session's terminal recording, or write it as a .cast file
  reload    reload the access rules and plugins of a running gateway
  ssh       short-lived SSH certificates: login, config, ca, revoke
  version   print the version

Run 'gateway <command> --help' for a command's flags.
`

// errUsage marks a mistake in the command line; main exits 2 for it.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "token":
		err = cmdToken(args[1:], stdout, stderr)
	case "plugin":
		err = cmdPlugin(args[1:], stdout, stderr)
	case "audit":
		err = cmdAudit(args[1:], stdout, stderr)
	case "approvals":
		err = cmdApprovals(args[1:], stdout, stderr)
	case "reload":
		err = cmdReload(args[1:], stdout, stderr)
	case "ssh":
		err = cmdSSH(args[1:], stdout, stderr)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "gateway %s\n", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "gateway: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errReported):
		return 1
	}
	fmt.Fprintf(stderr, "gateway %s: %v\n", args[0], err)
	return 1
}

// errReported means the command already printed what went wrong.
var errReported = errors.New("reported")

// newFlags makes a flag set whose --help prints the command's summary.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", summary)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// parseNamed parses a command whose one optional positional argument (a
// session ID, a query's name) may come before or after the flags, and
// returns it ("" when none was given).
func parseNamed(fs *flag.FlagSet, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", errUsage
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		return rest[0], parse(fs, rest[1:])
	}
	if len(rest) > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(rest, " "))
		return "", errUsage
	}
	return name, nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
