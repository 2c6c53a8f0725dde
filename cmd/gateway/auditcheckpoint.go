package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
)

// auditCheckpoints signs close rows (when a key is set) and wraps the
// recorder in the checkpointer, whose final checkpoint Close writes. On an
// error rec is closed.
func auditCheckpoints(cfg *config.Config, rec audit.Recorder, log *slog.Logger) (audit.Recorder, error) {
	var key ed25519.PrivateKey
	if cfg.Audit.SigningKey.IsSet() {
		var err error
		if key, err = audit.ParseSigningKey([]byte(cfg.Audit.SigningKey.Value())); err != nil {
			rec.Close()
			return nil, err
		}
		rec = audit.Signing(rec, key)
	}
	o := audit.CheckpointOptions{GatewayID: cfg.Gateway.ID, Key: key, Interval: cfg.Audit.CheckpointInterval.Duration,
		StatePath: cfg.DataPath("audit-checkpoint.json"), Log: log}
	if u := cfg.Audit.CheckpointWebhook; u != "" {
		o.OnHead = headWebhook(u, log)
	}
	return audit.Checkpointing(rec, o), nil
}

// headWebhook posts each checkpoint head to url, from one goroutine so the
// checkpointer never waits on the network. A head that finds the queue
// full is only in the log and the store: the log line is the copy of
// record.
func headWebhook(url string, log *slog.Logger) func(audit.Row) {
	heads := make(chan audit.Row, 64)
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		for r := range heads {
			body, _ := json.Marshal(map[string]any{"gateway_id": r.GatewayID, "run": r.SessionID, "seq": r.Seq,
				"status": r.Status, "time": r.Time, "head": r.RowHash, "signature": r.Signature})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
			}
			cancel()
			if err != nil {
				log.Warn("audit checkpoint webhook failed", "seq", r.Seq, "err", err)
			}
		}
	}()
	return func(r audit.Row) {
		select {
		case heads <- r:
		default:
			log.Warn("audit checkpoint webhook queue full; head only in the log", "seq", r.Seq)
		}
	}
}
