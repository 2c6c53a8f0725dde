package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/identity"
)

func cmdToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", `Usage: gateway token --sub NAME [--group G]... [--claim k=v]... [--ttl 10m] [--aud A] [-c gateway.toml]

Mints a token from the development issuer configured in [dev] and prints it.
Only a gateway started with 'serve --dev' trusts these tokens.`, stderr)
	path := configFlag(fs)
	sub := fs.String("sub", "", "subject of the token (required)")
	ttl := fs.Duration("ttl", 10*time.Minute, "lifetime of the token")
	aud := fs.String("aud", "", "audience (default: [dev] audience)")
	var groups, claims listFlag
	fs.Var(&groups, "group", "a group the subject belongs to (repeatable)")
	fs.Var(&claims, "claim", "an extra claim as key=value, e.g. repository=acme/app (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "gateway token: --sub is required")
		return errUsage
	}
	extra := map[string]any{}
	for _, kv := range claims {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "gateway token: --claim %q: want key=value\n", kv)
			return errUsage
		}
		switch k {
		case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "groups":
			fmt.Fprintf(stderr, "gateway token: --claim %s: set by the issuer or by its own flag\n", k)
			return errUsage
		}
		extra[k] = v
	}
	cfg, err := loadConfig(fs, *path)
	if err != nil {
		return err
	}
	if cfg.Dev == nil {
		return errors.New("the config has no [dev] table, so there is no development issuer to mint from")
	}
	iss, err := identity.NewDevIssuer(cfg.Dev, cfg.Path(cfg.Gateway.DataDir))
	if err != nil {
		return err
	}
	tok, err := iss.Mint(identity.MintOptions{Subject: *sub, Groups: groups, Claims: extra, TTL: *ttl, Audience: *aud})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
