package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/tollgate-dev/tollgate/host/config"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", `Usage: gateway check [-c gateway.toml] [--dev]

Validates the config, including that every env: and file: credential
resolves, that every plugin loads and its [plugins.config] fits the keys
the plugin declares (sdk/ABI.md; a plugin that declares none gets a
warning), and that 'gateway serve' would start with it, and exits 0;
otherwise prints each problem as FILE:LINE:COL: message and exits 1.

Without --dev a postgres listener needs tls_cert and tls_key (or
allow_plaintext), as for 'gateway serve'; --dev checks the config as
'gateway serve --dev' starts it: a [dev] table is required, and a postgres
listener without a certificate gets a self-signed one.`, stderr)
	path := configFlag(fs)
	dev := fs.Bool("dev", false, "check the config as 'gateway serve --dev' would start it")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *path)
	var warnings config.Problems
	if err == nil {
		// Every problem in one run, in file order.
		var all, serve, plugins config.Problems
		errors.As(cfg.ResolveSecrets(), &all)
		if errors.As(cfg.ValidateServe(*dev), &serve) {
			all = append(all, serve...)
		}
		plugins, warnings = checkPlugins(context.Background(), cfg)
		all = append(all, plugins...)
		sort.SliceStable(all, func(i, j int) bool { return all[i].Line < all[j].Line })
		if len(all) > 0 {
			err = all
		}
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, w)
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(stderr, p)
		}
		return errReported
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %d listeners, %d targets, %d access rules, %d plugins\n",
		len(cfg.Listeners), len(cfg.Targets), len(cfg.Access), len(cfg.Plugins))
	fmt.Fprintln(stdout, durabilityLine(cfg))
	return nil
}

// durabilityLine states what a SIGKILL can take back (README, "Audit
// durability"): the store, its durability, and the targets that differ.
func durabilityLine(cfg *config.Config) string {
	line := fmt.Sprintf("audit: store %s, durability %s", cfg.Audit.Store, cfg.Audit.Durability)
	var other []string
	for _, t := range cfg.Targets {
		if t.Durability != cfg.Audit.Durability {
			other = append(other, t.Name+" "+t.Durability)
		}
	}
	if len(other) > 0 {
		line += " (targets: " + strings.Join(other, ", ") + ")"
	}
	return line
}
