package http

import (
	"context"
	"encoding/json"
	"net/http"
)

// errorBody is what every refusal looks like to the client: a status, a
// stable code a program can branch on, and a reason a person can act on.
// Never a Go error string: those leak internals.
type errorBody struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	SessionID string `json:"session_id,omitempty"`
}

func (x *exchange) fail(w http.ResponseWriter, status int, code, reason string) {
	x.errMsg = code + ": " + reason
	if x.sess == nil {
		// Refused before anyone was identified: a session of its own, so
		// that probes and scans leave a trace the client can quote.
		x.sess = x.conn.sessionFor(nil, "", x.start)
	}
	body := errorBody{Status: status, Error: code, Reason: reason, SessionID: x.sess.ID()}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func exchangeFrom(ctx context.Context) *exchange {
	return ctx.Value(exchangeKey{}).(*exchange)
}
