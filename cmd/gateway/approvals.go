package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/approval"
)

const approvalsUsage = `Usage: gateway approvals <list|show|approve|deny> ...

  gateway approvals list [--all] [--format table|json]
      the approvals waiting for a decision (--all: and recent decisions)
  gateway approvals show ID
      one approval: who asked, the exact request, the state
  gateway approvals approve ID [--reason R] [--scope once|session --minutes N]
      let the held request run (session: and the same request in its session for N minutes)
  gateway approvals deny ID --reason R
      fail the held request with the reason

Each talks to the running gateway's admin API ([admin] listen, or --admin)
with the token in --token or TOLLGATE_TOKEN (in --dev: gateway token).`

func cmdApprovals(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, approvalsUsage)
		return errUsage
	}
	verb := args[0]
	switch verb {
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, approvalsUsage)
		return nil
	case "list", "show", "approve", "deny":
	default:
		fmt.Fprintf(stderr, "gateway approvals: unknown command %q\n\n%s\n", verb, approvalsUsage)
		return errUsage
	}
	fs := newFlags("approvals "+verb, approvalsUsage, stderr)
	path := configFlag(fs)
	adminURL := fs.String("admin", "", "the admin API's URL (default: http://<[admin] listen>)")
	token := fs.String("token", "", "an OIDC token of an approver (default: $TOLLGATE_TOKEN)")
	format := fs.String("format", "table", "list and show: table or json")
	all := fs.Bool("all", false, "list: recent decisions too")
	reason := fs.String("reason", "", "approve, deny: why (deny: required; the requester sees it)")
	scope := fs.String("scope", "once", "approve: once, or session (the same request in the same session for --minutes)")
	minutes := fs.Int("minutes", 0, "approve --scope session: how long")
	var id string
	var err error
	if verb == "list" {
		err = parse(fs, args[1:])
	} else {
		id, err = positional(fs, args[1:]) // the approval ID
	}
	if err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return errors.New("--format must be table or json")
	}
	if verb == "deny" && strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(stderr, "gateway approvals deny: --reason is required (the requester sees it)")
		return errUsage
	}
	c, err := approvalsClient(fs, *path, *adminURL, *token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch verb {
	case "list":
		recs, err := c.Approvals(ctx)
		if err != nil {
			return err
		}
		if !*all {
			recs = pendingOnly(recs)
		}
		if *format == "json" {
			return json.NewEncoder(stdout).Encode(recs)
		}
		printApprovals(stdout, recs)
		return nil
	case "show":
		r, err := c.Approval(ctx, id)
		if err != nil {
			return err
		}
		if *format == "json" {
			return json.NewEncoder(stdout).Encode(r)
		}
		printApproval(stdout, r)
		return nil
	case "approve":
		r, err := c.Approve(ctx, id, admin.DecideRequest{Reason: *reason, Scope: *scope, Minutes: *minutes})
		if err != nil {
			return err
		}
		if r.State == approval.StatePending {
			fmt.Fprintf(stdout, "%s: approval recorded, %d of %d\n", r.ID, len(r.Votes), r.Required)
		} else {
			fmt.Fprintf(stdout, "%s: %s by %s\n", r.ID, r.State, r.DecidedBy)
		}
		return nil
	default: // deny
		r, err := c.Deny(ctx, id, admin.DecideRequest{Reason: *reason})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s by %s\n", r.ID, r.State, r.DecidedBy)
		return nil
	}
}

func approvalsClient(fs *flag.FlagSet, path, adminURL, token string) (*admin.Client, error) {
	if token == "" {
		token = os.Getenv("TOLLGATE_TOKEN")
	}
	if token == "" {
		return nil, errors.New("a token is required: --token or TOLLGATE_TOKEN (in --dev: gateway token --sub you@example.com --group <approver group>)")
	}
	if adminURL == "" {
		cfg, err := loadConfig(fs, path)
		if err != nil {
			return nil, err
		}
		if cfg.Admin.Listen == "" {
			return nil, errors.New("the config has no [admin] listen: pass --admin URL")
		}
		adminURL = "http://" + cfg.Admin.Listen
	}
	return &admin.Client{URL: strings.TrimSuffix(adminURL, "/"), Token: token}, nil
}

func pendingOnly(recs []approval.Record) []approval.Record {
	out := recs[:0:0]
	for _, r := range recs {
		if r.State == approval.StatePending {
			out = append(out, r)
		}
	}
	return out
}

func printApprovals(w io.Writer, recs []approval.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGE\tSUBJECT\tTARGET\tREQUEST\tAPPROVERS")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, time.Since(r.Created).Round(time.Second),
			r.Subject, r.Target, oneLine(requestLine(r.Fields), 60), strings.Join(r.ApproverGroups, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "(%d approvals)\n", len(recs))
}

func printApproval(w io.Writer, r approval.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", r.ID)
	row("state", string(r.State))
	row("url", r.URL)
	row("requested", r.Created.UTC().Format(time.RFC3339))
	row("expires", r.Expires.UTC().Format(time.RFC3339))
	row("subject", r.Subject)
	row("issuer", r.Issuer)
	keys := make([]string, 0, len(r.Claims))
	for k := range r.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("claim "+k, r.Claims[k])
	}
	row("protocol", r.Protocol)
	row("target", r.Target)
	row("session", r.SessionID)
	row("held by", r.Plugin+": "+r.Reason)
	row("approvers", fmt.Sprintf("%s (%d needed)", strings.Join(r.ApproverGroups, ", "), r.Required))
	for _, v := range r.Votes {
		row("approved by", v.Approver+" "+v.At.UTC().Format(time.RFC3339)+" "+v.Reason)
	}
	if r.State != approval.StatePending {
		row("decided", strings.TrimSpace(fmt.Sprintf("%s %s %s", r.DecidedBy, r.DecidedAt.UTC().Format(time.RFC3339), r.DecisionReason)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nrequest:\n%s\n", requestLine(r.Fields))
	if n, _ := strconv.Atoi(r.Covered["body.length"]); n > 0 {
		note := ""
		if n > 1024 {
			note = ", first KiB shown"
		}
		if r.BodyQuoted {
			note += ", not UTF-8 text, quoted"
		}
		fmt.Fprintf(w, "\nbody (%d bytes, sha256 %s%s):\n%s\n", n, r.Covered["body.sha256"], note, r.Body)
	}
	if len(r.Covered) > 0 {
		// What a retry must match exactly to run on this approval.
		fmt.Fprintf(w, "\ncovers (with the target and the subject):\n")
		keys := make([]string, 0, len(r.Covered))
		for k := range r.Covered {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s\t%q\n", k, r.Covered[k])
		}
	}
}

func requestLine(f map[string]string) string {
	for _, k := range []string{"sql", "command"} {
		if v := f[k]; v != "" {
			return v
		}
	}
	s := f["method"] + " " + f["path"]
	if q := f["query"]; q != "" {
		s += "?" + q
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
