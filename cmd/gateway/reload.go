package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/config"
)

// reloader reloads what a running gateway changes without a restart: the
// [[access]] rules and the [[plugins]] chain, from the config file as it
// is now. Both change together or neither does: the plugins are loaded
// first, and if the file or a plugin does not load, the rules and the
// chain serving stay as they were. Listeners, targets, identity, audit
// and approvals need a restart.
type reloader struct {
	mu      sync.Mutex // one reload at a time
	load    func() (*config.Config, error)
	plugins *plugins
	policy  *access.Policy
	log     *slog.Logger
}

// reload runs one reload (SIGHUP, or POST /v1/reload for `gateway
// reload`) and says what it did.
func (r *reloader) reload(ctx context.Context) admin.ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := r.load()
	if err != nil {
		r.log.Error("reload: config not loaded; keeping the current plugins and access rules", "err", err)
		return admin.ReloadResult{Error: "config not loaded: " + err.Error()}
	}
	chain, closeFn, err := r.plugins.load(ctx, cfg)
	if err != nil {
		r.log.Error("reload: plugins not loaded; keeping the current plugins and access rules", "err", err)
		return admin.ReloadResult{Error: "plugins not loaded: " + err.Error()}
	}
	changes := r.policy.Replace(cfg.Access)
	r.plugins.chain.Replace(chain, closeFn)
	res := admin.ReloadResult{OK: true}
	for _, p := range cfg.Plugins {
		res.Plugins = append(res.Plugins, p.Name)
	}
	for _, c := range changes {
		res.Access = append(res.Access, c.Rule+": "+c.What)
		r.log.Info("reload: access rule "+c.What, "rule", c.Rule)
	}
	r.log.Info("reload: plugins replaced", "plugins", len(res.Plugins), "access_changes", len(changes))
	return res
}

const reloadUsage = `Usage: gateway reload [-c gateway.toml] [--admin URL] [--token T]

Reloads the access rules and the plugins of the running gateway from its
config file, as SIGHUP does, through the admin API, and prints what
changed. Both change or neither does: if the file or a plugin does not
load, what serves stays, and reload exits 1 with the reason. The token
(--token or TOLLGATE_TOKEN) must be in one of [admin] groups.`

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reload", reloadUsage, stderr)
	path := configFlag(fs)
	adminURL := fs.String("admin", "", "the admin API's URL (default: http://<[admin] listen>)")
	token := fs.String("token", "", "an OIDC token in one of [admin] groups (default: $TOLLGATE_TOKEN)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := approvalsClient(fs, *path, *adminURL, *token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.Reload(ctx)
	if err != nil {
		return err
	}
	if !res.OK {
		fmt.Fprintf(stderr, "gateway reload: nothing changed: %s\n", res.Error)
		return errReported
	}
	fmt.Fprintf(stdout, "reloaded: plugins %s\n", strings.Join(res.Plugins, ", "))
	if len(res.Access) == 0 {
		fmt.Fprintln(stdout, "access rules: unchanged")
	}
	for _, a := range res.Access {
		fmt.Fprintf(stdout, "access rule %s\n", a)
	}
	return nil
}
