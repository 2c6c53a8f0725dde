package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/approval/chstore"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
)

// approvals is the approval service serve hands to the admin API and the
// protocols; the zero value (no [approvals] table) is "off", and its
// methods are safe on nil.
type approvals struct {
	m        *approval.Manager
	notifier *approval.Notifier
	wait     time.Duration
	secure   bool
}

// startApprovals opens the approval store in the data directory and starts
// the webhook workers; nil when the config has no [approvals].
func startApprovals(cfg *config.Config, rec audit.Recorder, log *slog.Logger) (*approvals, error) {
	ac := cfg.Approvals
	if ac == nil {
		return nil, nil
	}
	st, err := openApprovalStore(cfg)
	if err != nil {
		return nil, err
	}
	a := &approvals{wait: ac.HTTPWait.Duration, secure: strings.HasPrefix(ac.BaseURL, "https://")}
	o := approval.Options{
		Timeout: ac.Timeout.Duration, ApprovalsRequired: ac.ApprovalsRequired, MaxSessionGrant: ac.MaxSessionGrant.Duration,
		URL:   func(id string) string { return strings.TrimSuffix(ac.BaseURL, "/") + "/ui/approvals/" + id },
		Store: st, Recorder: rec, GatewayID: cfg.Gateway.ID, Log: log.With("component", "approval"),
		PollInterval: ac.PollInterval.Duration, MaxPendingPerPrincipal: ac.MaxPendingPerPrincipal, MaxPendingPerTarget: ac.MaxPendingPerTarget,
	}
	if len(ac.Webhooks) > 0 {
		hooks := make([]approval.Webhook, len(ac.Webhooks))
		for i, w := range ac.Webhooks {
			hooks[i] = approval.Webhook{Group: w.Group, URL: w.URL.Value(), Format: w.Format}
		}
		a.notifier = approval.NewNotifier(hooks, approval.NotifierOptions{Log: o.Log})
		o.Notify = a.notifier.Notify
	}
	if a.m, err = approval.New(o); err != nil {
		st.Close()
		if a.notifier != nil {
			a.notifier.Shutdown(context.Background())
		}
		return nil, err
	}
	log.Info("approvals on", "store", ac.Store, "timeout", ac.Timeout.Duration.String(), "http_wait", a.wait.String(), "approvals_required", ac.ApprovalsRequired, "console", ac.BaseURL+"/ui/")
	return a, nil
}

// openApprovalStore opens [approvals] store: a file in the data directory,
// or tables on the audit's ClickHouse server that every replica reads.
func openApprovalStore(cfg *config.Config) (approval.Store, error) {
	if cfg.Approvals.Store != "clickhouse" {
		return approval.OpenFileStore(filepath.Join(cfg.Path(cfg.Gateway.DataDir), "approvals.jsonl"))
	}
	a := cfg.Audit.ClickHouse
	o := chstore.Options{Addrs: a.Addrs, Database: a.Database, User: a.User, Password: a.Password.Value()}
	if a.TLS {
		tc, err := auditTLS(cfg)
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	// Not Open: the server may be down while the gateway starts; the
	// tables are created when it answers, and holds are refused until
	// then (approval.ErrStoreUnavailable).
	return chstore.Connect(o)
}

func (a *approvals) manager() *approval.Manager {
	if a == nil {
		return nil
	}
	return a.m
}

func (a *approvals) httpWait() time.Duration {
	if a == nil {
		return 0
	}
	return a.wait
}

func (a *approvals) secureCookies() bool { return a != nil && a.secure }

// webhookStats is nil without webhooks.
func (a *approvals) webhookStats() func() approval.NotifierStats {
	if a == nil || a.notifier == nil {
		return nil
	}
	return a.notifier.Stats
}

// Shutdown fails the requests still held (before the listeners drain, so
// they do not wait out the grace period), records that, and stops the
// webhooks.
func (a *approvals) Shutdown(ctx context.Context) error {
	if a == nil {
		return nil
	}
	err := a.m.Shutdown(ctx)
	if a.notifier != nil {
		// Queued notifications get a moment; retries are dropped.
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err = errors.Join(err, a.notifier.Shutdown(nctx))
	}
	return err
}
