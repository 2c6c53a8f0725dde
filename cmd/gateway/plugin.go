package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate-dev/tollgate/host/plugin/plugintool"
)

const pluginUsage = `Usage: gateway plugin <new|build|test|sdk> ...

  gateway plugin new NAME [--dir DIR]
      scaffold a plugin (handler, sample event and config, README, a test, a
      go.mod) that builds anywhere: the SDK is copied into NAME/tollgate-sdk
  gateway plugin build DIR [-o OUT.wasm]
      build it with the Go toolchain: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared
  gateway plugin test PLUGIN.wasm --event EVENT.json [--config CONFIG.toml]
      run one event through the plugin with the real host; print the verdict,
      the rewritten fields and the annotations as JSON; exits 1 when the
      plugin crashes
  gateway plugin sdk --out DIR
      write this gateway's copy of the SDK module into DIR (a plugin's go.mod
      replaces github.com/tollgate-dev/tollgate/sdk with it)

The plugin ABI is in sdk/ABI.md; the Go SDK is github.com/tollgate-dev/tollgate/sdk.`

func cmdPlugin(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, pluginUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, pluginUsage)
		return nil
	case "new":
		fs := newFlags("plugin new", "Usage: gateway plugin new NAME [--dir DIR]\n\nScaffolds a plugin in DIR/NAME.", stderr)
		dir := fs.String("dir", ".", "where to create the plugin's folder")
		name, err := positional(fs, args[1:])
		if err != nil {
			return err
		}
		root, err := plugintool.Scaffold(*dir, name, version)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, `created %[1]s
next:
  cd %[1]s
  go test ./...                 # needs this gateway on PATH or in TOLLGATE_GATEWAY
  gateway plugin build .        # writes %[2]s.wasm
  gateway plugin test %[2]s.wasm --event event.json --config config.toml
then add it to gateway.toml (path is relative to gateway.toml's folder), and
run gateway check, then SIGHUP or gateway reload:
  [[plugins]]
  name = "%[2]s"
  path = "plugins/%[2]s.wasm"
  [plugins.config]
  blocked_paths = ["/admin"]
`, root, name)
		return nil
	case "sdk":
		fs := newFlags("plugin sdk", "Usage: gateway plugin sdk --out DIR\n\nWrites this gateway's copy of the plugin SDK module into DIR.", stderr)
		out := fs.String("out", "", "the folder to write (required)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *out == "" {
			fmt.Fprintln(stderr, "gateway plugin sdk: --out is required")
			return errUsage
		}
		if err := plugintool.WriteSDK(*out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the SDK (gateway %s) to %s\n", version, *out)
		return nil
	case "build":
		fs := newFlags("plugin build", "Usage: gateway plugin build DIR [-o OUT.wasm]\n\nBuilds the plugin in DIR for wasip1 with the Go toolchain.", stderr)
		out := fs.String("o", "", "output file (default DIR/<dir name>.wasm)")
		dir, err := positional(fs, args[1:])
		if err != nil {
			return err
		}
		path, err := plugintool.Build(dir, *out)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
		return nil
	case "test":
		fs := newFlags("plugin test", "Usage: gateway plugin test PLUGIN.wasm --event EVENT.json [--config CONFIG.toml]\n\nRuns one event through a plugin with the real host.", stderr)
		evPath := fs.String("event", "", "the event, as JSON (required)")
		cfgPath := fs.String("config", "", "the plugin's config table, as TOML")
		wasmPath, err := positional(fs, args[1:])
		if err != nil {
			return err
		}
		if *evPath == "" {
			fmt.Fprintln(stderr, "gateway plugin test: --event is required")
			return errUsage
		}
		wasm, err := os.ReadFile(wasmPath)
		if err != nil {
			return err
		}
		ev, err := os.ReadFile(*evPath)
		if err != nil {
			return err
		}
		var cfg []byte
		if *cfgPath != "" {
			if cfg, err = os.ReadFile(*cfgPath); err != nil {
				return err
			}
		}
		r, err := plugintool.Run(context.Background(), wasm, cfg, ev)
		if r != nil {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if eerr := enc.Encode(r); eerr != nil {
				return eerr
			}
		}
		if err != nil {
			// Non-zero, naming the plugin: a crash must fail the author's CI.
			return fmt.Errorf("plugin %s: %w", filepath.Base(wasmPath), err)
		}
		return nil
	}
	fmt.Fprintf(stderr, "gateway plugin: unknown command %q\n\n%s\n", args[0], pluginUsage)
	return errUsage
}

// positional parses one positional argument that may come before or after
// the flags.
func positional(fs interface {
	Parse([]string) error
	Args() []string
	Output() io.Writer
}, args []string) (string, error) {
	var pos string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", errUsage
	}
	rest := fs.Args()
	if pos == "" && len(rest) > 0 {
		pos, rest = rest[0], rest[1:]
	}
	if pos == "" || len(rest) > 0 {
		fmt.Fprintln(fs.Output(), "expected exactly one argument")
		return "", errUsage
	}
	return pos, nil
}
