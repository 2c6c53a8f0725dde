package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/tollgate-dev/tollgate/host/config"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", `Usage: gateway check [-c gateway.toml]

Validates the config, including that every env: and file: credential
resolves, and exits 0; otherwise prints each problem as FILE:LINE:COL: message
and exits 1.`, stderr)
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *path)
	if err == nil {
		err = cfg.ResolveSecrets()
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
	return nil
}
