package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
)

// Client calls the admin API; the CLI uses it to query a store that the
// running gateway owns.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8090
	Token string
	HTTP  *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Reason string }
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		return fmt.Errorf("%w: %s: %s: %s", ErrStatus, resp.Status, e.Error, e.Reason)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Query runs read-only SQL through the gateway.
func (c *Client) Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error) {
	if len(args) > 0 {
		return nil, nil, fmt.Errorf("admin: query parameters are not supported over the API")
	}
	var r QueryResponse
	if err := c.do(ctx, http.MethodPost, "/v1/audit/query", QueryRequest{SQL: sql}, &r); err != nil {
		return nil, nil, err
	}
	return r.Columns, r.Rows, nil
}

// Rows reads one session's rows (or all, session "") for verification.
func (c *Client) Rows(ctx context.Context, session string) ([]audit.Row, error) {
	var rows []audit.Row
	err := c.do(ctx, http.MethodGet, "/v1/audit/rows?session="+url.QueryEscape(session), nil, &rows)
	return rows, err
}

// Approvals lists the approvals the caller may see: pending, then recent.
func (c *Client) Approvals(ctx context.Context) ([]approval.Record, error) {
	var l ApprovalList
	err := c.do(ctx, http.MethodGet, "/v1/approvals", nil, &l)
	return l.Approvals, err
}

// Approval shows one approval.
func (c *Client) Approval(ctx context.Context, id string) (approval.Record, error) {
	var r approval.Record
	err := c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(id), nil, &r)
	return r, err
}

// Approve approves id (scope "once" or "session" with minutes).
func (c *Client) Approve(ctx context.Context, id string, d DecideRequest) (approval.Record, error) {
	var r approval.Record
	err := c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+"/approve", d, &r)
	return r, err
}

// Deny denies id; d.Reason is required.
func (c *Client) Deny(ctx context.Context, id string, d DecideRequest) (approval.Record, error) {
	var r approval.Record
	err := c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+"/deny", d, &r)
	return r, err
}

// Reload asks the gateway to reload its access rules and plugins and
// returns what it did.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var r ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &r)
	return r, err
}
