package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook is one approver group's notification endpoint.
type Webhook struct {
	Group  string
	URL    string
	Format string // "slack" (default) or "generic"
}

// NotifierStats count what the notifier did, for logs and metrics.
type NotifierStats struct {
	Sent    int64 `json:"sent"`
	Failed  int64 `json:"failed"`  // given up after the last retry
	Retried int64 `json:"retried"` // attempts that failed and were retried
	Dropped int64 `json:"dropped"` // the queue was full
}

// Notifier posts each new pending approval to the webhooks of its approver
// groups. Notify never blocks: deliveries go to a bounded queue that a few
// workers drain; a full queue drops the delivery with a log line. A failed
// delivery is retried with exponential backoff (timers, not sleeping
// workers) and given up after the last attempt, with a log line.
type Notifier struct {
	hooks   map[string][]Webhook
	queue   chan delivery
	client  *http.Client
	log     *slog.Logger
	backoff []time.Duration

	sent, failed, retried, dropped atomic.Int64

	mu     sync.Mutex
	closed bool
	timers map[*time.Timer]struct{} // retries waiting for their backoff
	wg     sync.WaitGroup
}

type delivery struct {
	hook    Webhook
	body    []byte
	attempt int
}

// NotifierOptions tune a Notifier; zero values take the defaults.
type NotifierOptions struct {
	QueueSize int             // default 256
	Workers   int             // default 2
	Timeout   time.Duration   // per attempt; default 5s
	Backoff   []time.Duration // waits before each retry; default 1s, 4s, 15s
	Log       *slog.Logger
}

// NewNotifier starts the workers; Close stops them.
func NewNotifier(hooks []Webhook, o NotifierOptions) *Notifier {
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Backoff == nil {
		o.Backoff = []time.Duration{time.Second, 4 * time.Second, 15 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	n := &Notifier{
		hooks: map[string][]Webhook{}, queue: make(chan delivery, o.QueueSize),
		client: &http.Client{Timeout: o.Timeout}, log: o.Log, backoff: o.Backoff, timers: map[*time.Timer]struct{}{},
	}
	for _, h := range hooks {
		n.hooks[h.Group] = append(n.hooks[h.Group], h)
	}
	for range o.Workers {
		n.wg.Add(1)
		go n.work()
	}
	return n
}

// Notify queues r for the webhooks of its approver groups.
func (n *Notifier) Notify(r Record) {
	seen := map[string]bool{}
	for _, g := range r.ApproverGroups {
		for _, h := range n.hooks[g] {
			if seen[h.URL] {
				continue // one message per endpoint, even for two of its groups
			}
			seen[h.URL] = true
			body, err := Payload(h.Format, r)
			if err != nil {
				n.log.Error("approval: webhook payload", "group", g, "err", err)
				continue
			}
			n.enqueue(delivery{hook: h, body: body})
		}
	}
}

func (n *Notifier) enqueue(d delivery) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	select {
	case n.queue <- d:
	default:
		n.dropped.Add(1)
		n.log.Warn("approval: webhook queue full; notification dropped", "group", d.hook.Group)
	}
}

func (n *Notifier) work() {
	defer n.wg.Done()
	for d := range n.queue {
		n.deliver(d)
	}
}

func (n *Notifier) deliver(d delivery) {
	err := n.post(d)
	if err == nil {
		n.sent.Add(1)
		return
	}
	if d.attempt >= len(n.backoff) {
		n.failed.Add(1)
		n.log.Warn("approval: webhook failed; giving up", "group", d.hook.Group, "attempts", d.attempt+1, "err", err)
		return
	}
	n.retried.Add(1)
	wait := n.backoff[d.attempt]
	d.attempt++
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		n.mu.Lock()
		delete(n.timers, t)
		n.mu.Unlock()
		n.enqueue(d)
	})
	n.timers[t] = struct{}{}
}

func (n *Notifier) post(d delivery) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.hook.URL, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate-approvals")
	resp, err := n.client.Do(req)
	if err != nil {
		// The URL is a credential: say which group, not where.
		return fmt.Errorf("post: %v", redactURL(err, d.hook.URL))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func redactURL(err error, u string) string {
	return strings.ReplaceAll(err.Error(), u, "<webhook url>")
}

// Stats are the counters so far.
func (n *Notifier) Stats() NotifierStats {
	return NotifierStats{Sent: n.sent.Load(), Failed: n.failed.Load(), Retried: n.retried.Load(), Dropped: n.dropped.Load()}
}

// Shutdown stops taking notifications, drops pending retries and lets the
// workers finish what is queued until ctx ends.
func (n *Notifier) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for t := range n.timers {
		t.Stop()
	}
	clear(n.timers)
	close(n.queue)
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("approval: webhooks: %w", ctx.Err())
	}
}

// Payload renders r for a webhook: "slack" is {"text": ...} with the
// request, who asked and the approval URL (Slack's incoming webhooks,
// Mattermost and others take it); "generic" is
// {"type": "approval.pending", "approval": Record}, without the body: a
// webhook endpoint is not a reviewer (the covered hash and length stay).
func Payload(format string, r Record) ([]byte, error) {
	switch format {
	case "generic":
		r.Body, r.BodyQuoted = "", false
		return json.Marshal(struct {
			Type     string `json:"type"`
			Approval Record `json:"approval"`
		}{"approval.pending", r})
	case "slack", "":
		return json.Marshal(map[string]string{"text": SlackText(r)})
	}
	return nil, fmt.Errorf("approval: unknown webhook format %q", format)
}

// SlackText is the message: who asked, for what, where to decide. Slack's
// control characters (&, <, >) in request text are escaped.
func SlackText(r Record) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
	var b strings.Builder
	who := r.Subject
	if v := r.Claims["actor"]; v != "" {
		who += " (actor " + v + ")"
	}
	if v := r.Claims["repository"]; v != "" {
		who += " in " + v
	}
	fmt.Fprintf(&b, "Approval needed: %s wants to run a %s on %s.\n", esc(who), esc(r.Kind), esc(r.Target))
	fmt.Fprintf(&b, "```%s```\n", esc(summary(r.Fields)))
	if r.Reason != "" {
		fmt.Fprintf(&b, "Held by %s: %s\n", esc(r.Plugin), esc(r.Reason))
	}
	fmt.Fprintf(&b, "Approve or deny (approver groups %s) before %s: <%s|%s>",
		esc(strings.Join(r.ApproverGroups, ", ")), r.Expires.UTC().Format(time.RFC3339), r.URL, r.ID)
	return b.String()
}

// summary is the request in one or a few lines: the SQL or command when
// there is one, else method and path, else the fields.
func summary(f map[string]string) string {
	for _, k := range []string{"sql", "command"} {
		if v := f[k]; v != "" {
			return truncate(v, 1500)
		}
	}
	if m := f["method"]; m != "" {
		s := m + " " + f["path"]
		if q := f["query"]; q != "" {
			s += "?" + q
		}
		return truncate(s, 1500)
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, f[k])
	}
	return truncate(b.String(), 1500)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
