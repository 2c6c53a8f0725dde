package ssh

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// KindCertificate is the row of a certificate issued (or refused) by the
// API; KindRevoke the row of a serial revoked.
const (
	KindCertificate = "ssh.certificate"
	KindRevoke      = "ssh.revoke"
)

// CertRequest is the body of POST /v1/ssh/{listener}/certificate, with
// the OIDC token as its bearer.
type CertRequest struct {
	// PublicKey is the key to certify, in authorized_keys format.
	PublicKey string `json:"public_key"`
	// Targets restricts the certificate to these targets; empty: every
	// target of the listener the access rules grant.
	Targets []string `json:"targets,omitempty"`
	// Login restricts it to one remote login; empty: each target's
	// default login, and at use any login the rules allow (see doc.go).
	Login string `json:"login,omitempty"`
}

// CertTarget is a target a certificate reaches, with the login the
// ssh_config uses for it.
type CertTarget struct {
	Name  string `json:"name"`
	Login string `json:"login"`
}

// CertResponse is the answer: the certificate, and what a client needs
// to write its ssh_config.
type CertResponse struct {
	Certificate  string       `json:"certificate"` // authorized_keys format
	Serial       string       `json:"serial"`      // decimal
	KeyID        string       `json:"key_id"`
	Subject      string       `json:"subject"` // whom it was issued to
	ValidAfter   time.Time    `json:"valid_after"`
	ValidBefore  time.Time    `json:"valid_before"`
	Principals   []string     `json:"principals"`
	Targets      []CertTarget `json:"targets"`
	Listener     string       `json:"listener"`
	Host         string       `json:"host,omitempty"` // empty: the API's host
	Port         int          `json:"port"`
	HostKey      string       `json:"host_key"` // the gateway's host key, authorized_keys format
	HostKeyAlias string       `json:"host_key_alias"`
	CA           string       `json:"ca"` // the CA's public key
}

// RevokeRequest is the body of POST /v1/ssh/{listener}/revoke (admin
// groups only).
type RevokeRequest struct {
	Serial string `json:"serial"`
	Reason string `json:"reason,omitempty"`
}

// validRouteName is a listener name that can sit in an API path as is.
var validRouteName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// API is the listener's routes on the gateway's API (gate.APIService):
//
//	POST /v1/ssh/{listener}/certificate  CertRequest → CertResponse (any verified token; access rules apply)
//	GET  /v1/ssh/{listener}/ca           the CA's public key (no authentication)
//	POST /v1/ssh/{listener}/revoke       RevokeRequest (admin groups)
//
// None without a CA key (ca_key).
func (l *Listener) API() []gate.Route {
	if l.opts.CAKey == "" {
		return nil
	}
	if !validRouteName.MatchString(l.name) {
		l.log.Warn("certificates are not issued through the API: the listener's name cannot be a path segment")
		return nil
	}
	base := "/v1/ssh/" + l.name
	return []gate.Route{
		{Pattern: "POST " + base + "/certificate", Handler: http.HandlerFunc(l.issueCert)},
		{Pattern: "GET " + base + "/ca", Handler: http.HandlerFunc(l.serveCA)},
		{Pattern: "POST " + base + "/revoke", Admin: true, Handler: http.HandlerFunc(l.revokeCert)},
	}
}

// CA is the public key of the listener's certificate authority (after
// Start; nil when certificates are off).
func (l *Listener) CA() xssh.PublicKey {
	if s := l.ca.Load(); s != nil {
		return (*s).PublicKey()
	}
	return nil
}

func (l *Listener) serveCA(w http.ResponseWriter, r *http.Request) {
	ca := l.CA()
	if ca == nil {
		apiError(w, http.StatusServiceUnavailable, "starting", "the SSH listener has not started")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(xssh.MarshalAuthorizedKey(ca))
}

func apiError(w http.ResponseWriter, status int, code, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "error": code, "reason": reason})
}

// bearer is the request's bearer token ("" when none).
func bearer(r *http.Request) string {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// issueCert exchanges a verified OIDC token and a public key for a user
// certificate. Each call is a session of its own: its open row, one
// ssh.certificate row (issued, with serial, validity and the key's
// fingerprint; or refused, with why) and its close row. The token is in
// none of them.
func (l *Listener) issueCert(w http.ResponseWriter, r *http.Request) {
	sess := l.deps.NewSession(gate.SessionInfo{Protocol: "ssh", Listener: l.name, Remote: r.RemoteAddr})
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	// fields grows as the request is understood; a refused row says what was known.
	fields := map[string]string{}
	// refuse answers status with why, after the rows that say so.
	refuse := func(status int, code, why string, count bool) {
		if count {
			l.limit.fail(host)
		}
		open := sess.Row("")
		open.Verdict, open.Error = "deny", why
		open.Request = map[string]string{"op": "certificate"}
		sess.Open(open)
		row := sess.Row(KindCertificate)
		row.Request = fields
		row.Verdict, row.Status, row.Error = "deny", "refused", why
		sess.Record(row)
		sess.Close("refused", why)
		sess.Log().Info("ssh certificate refused", "reason", why)
		apiError(w, status, code, why)
	}
	ca := l.ca.Load()
	if ca == nil {
		apiError(w, http.StatusServiceUnavailable, "starting", "the SSH listener has not started")
		return
	}
	if l.limit.blocked(host) {
		refuse(http.StatusTooManyRequests, "rate_limited", "too many failed authentications from "+host+"; try again later", false)
		return
	}
	if err := l.deps.Admit(); err != nil {
		apiError(w, http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot take the row of this certificate: "+err.Error())
		return
	}
	p, err := l.deps.Verify(r.Context(), bearer(r))
	if err != nil {
		kind, reason := gate.AuthFailure(err)
		if kind == gate.AuthUnavailable {
			sess.Log().Warn("token not verified", "err", err)
			refuse(http.StatusServiceUnavailable, "unavailable", reason, false)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		refuse(http.StatusUnauthorized, "unauthenticated", "authentication failed: "+reason, true)
		return
	}
	sess.SetPrincipal(p)
	var req CertRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		refuse(http.StatusBadRequest, "bad_request", "the body must be {\"public_key\": \"ssh-ed25519 AAAA...\", \"targets\": [...], \"login\": \"...\"}", false)
		return
	}
	key, _, _, _, err := xssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		refuse(http.StatusBadRequest, "bad_key", "public_key is not an SSH public key in authorized_keys format", false)
		return
	}
	fields["key_type"], fields["key_fingerprint"] = key.Type(), xssh.FingerprintSHA256(key)
	if len(req.Targets) > 0 {
		fields["targets"] = strings.Join(req.Targets, ",")
	}
	if req.Login != "" {
		fields["login"] = req.Login
	}
	if why := weakKey(key); why != "" {
		refuse(http.StatusBadRequest, "bad_key", why, false)
		return
	}
	if req.Login != "" && !validLogin.MatchString(req.Login) {
		refuse(http.StatusBadRequest, "bad_login", fmt.Sprintf("%q is not a valid login", req.Login), false)
		return
	}
	targets, rules, why := l.certTargets(p, req)
	if why != "" {
		refuse(http.StatusForbidden, "forbidden", why, true)
		return
	}
	if len(targets) == 1 {
		sess.SetTarget(targets[0].Name, rules[0])
	}
	now := time.Now()
	after, before := now.Add(-certSkew), now.Add(l.opts.MaxCertTTL)
	if exp, err := strconv.ParseFloat(p.Claims["exp"], 64); err == nil && time.Unix(int64(exp), 0).Before(before) {
		before = time.Unix(int64(exp), 0)
	}
	if !before.After(now) {
		refuse(http.StatusUnauthorized, "expired", "the token expires now: a certificate would not outlive it", false)
		return
	}
	serial, err := newSerial()
	if err != nil {
		refuse(http.StatusInternalServerError, "internal", "no certificate serial: "+err.Error(), false)
		return
	}
	keyID := "tollgate " + sess.ID()
	principals := principalsFor(targets, req.Login)
	cert, err := signCert(*ca, key, p, serial, keyID, principals, after, before)
	if err != nil {
		refuse(http.StatusBadRequest, "not_signed", err.Error(), false)
		return
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	fields["serial"], fields["key_id"] = strconv.FormatUint(serial, 10), keyID
	fields["valid_after"], fields["valid_before"] = certTime(cert.ValidAfter), certTime(cert.ValidBefore)
	fields["principals"], fields["targets"] = strings.Join(principals, ","), strings.Join(names, ",")
	open := sess.Row("")
	open.Request = map[string]string{"op": "certificate"}
	if err := sess.Open(open); err != nil {
		apiError(w, http.StatusServiceUnavailable, "audit_unavailable", "the certificate's row was not recorded: "+err.Error())
		return
	}
	row := sess.Row(KindCertificate)
	row.Request, row.Verdict, row.Status = fields, "allow", "issued"
	if len(rules) > 0 {
		row.AccessRule = strings.Join(slices.Compact(slices.Sorted(slices.Values(rules))), ",")
	}
	// Nothing unrecorded: without its row, the certificate is not handed out.
	if _, err := sess.Record(row); err != nil {
		sess.Close("refused", "row not recorded")
		apiError(w, http.StatusServiceUnavailable, "audit_unavailable", "the certificate's row was not recorded: "+err.Error())
		return
	}
	sess.Close("issued", "")
	sess.Log().Info("ssh certificate issued", "subject", p.Subject, "serial", serial, "principals", principals,
		"valid_before", certTime(cert.ValidBefore), "key", xssh.FingerprintSHA256(key))
	resp := CertResponse{
		Certificate: strings.TrimSpace(string(xssh.MarshalAuthorizedKey(cert))),
		Serial:      strconv.FormatUint(serial, 10), KeyID: keyID, Subject: p.Subject,
		ValidAfter: time.Unix(int64(cert.ValidAfter), 0).UTC(), ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC(),
		Principals: principals, Targets: targets, Listener: l.name,
		HostKey:      strings.TrimSpace(string(xssh.MarshalAuthorizedKey(l.signer.PublicKey()))),
		HostKeyAlias: "tollgate-" + l.name,
		CA:           strings.TrimSpace(string(xssh.MarshalAuthorizedKey((*ca).PublicKey()))),
	}
	resp.Host, resp.Port = l.advertised()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// certTargets is what a certificate for req may reach: the requested
// targets (or every target of the listener) whose login the access rules
// grant p, and the rules that granted them; why says what is refused.
func (l *Listener) certTargets(p *event.Principal, req CertRequest) (targets []CertTarget, rules []string, why string) {
	names := req.Targets
	explicit := len(names) > 0
	if !explicit {
		for n := range l.targets {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var denied []string
	for _, n := range names {
		if l.targets[n] == nil {
			return nil, nil, "unknown target " + n
		}
		login := req.Login
		if login == "" {
			login = l.defaultLogin(n)
		}
		if login == "" {
			if explicit {
				return nil, nil, "no login for target " + n + ": ask for one (--login)"
			}
			continue
		}
		d := l.grant(p, n, login)
		if !d.Allowed {
			if explicit {
				return nil, nil, "access denied: login " + login + " on target " + n + ": " + d.Reason
			}
			denied = append(denied, "login "+login+" on target "+n+": "+d.Reason)
			continue
		}
		targets = append(targets, CertTarget{Name: n, Login: login})
		rules = append(rules, d.Rule)
	}
	if len(targets) == 0 {
		if len(denied) == 0 {
			return nil, nil, "no target of listener " + l.name + " has a default login: ask for one (--login)"
		}
		if len(denied) > 3 {
			denied = append(denied[:3], fmt.Sprintf("and %d more targets", len(denied)-3))
		}
		return nil, nil, "access denied: " + strings.Join(denied, "; ")
	}
	return targets, rules, ""
}

// grant is the access check of a connection as login to target: some
// verb (exec, or shell) granted on the login. Each channel request is
// checked for its own verb later.
func (l *Listener) grant(p *event.Principal, target, login string) gate.AccessDecision {
	d := l.deps.Authorize(p, gate.AccessRequest{Target: target, Verb: VerbExec, Resource: "/" + login})
	if !d.Allowed {
		if sh := l.deps.Authorize(p, gate.AccessRequest{Target: target, Verb: VerbShell, Resource: "/" + login}); sh.Allowed {
			d = sh
		}
	}
	return d
}

// weakKey says why a key is not certified ("" when it is fine).
func weakKey(k xssh.PublicKey) string {
	switch k.Type() {
	case xssh.KeyAlgoED25519, xssh.KeyAlgoECDSA256, xssh.KeyAlgoECDSA384, xssh.KeyAlgoECDSA521,
		xssh.KeyAlgoSKED25519, xssh.KeyAlgoSKECDSA256:
		return ""
	case xssh.KeyAlgoRSA:
		if ck, ok := k.(xssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(interface{ Size() int }); ok && rk.Size()*8 >= 2048 {
				return ""
			}
		}
		return "an RSA key must have at least 2048 bits"
	}
	return "key type " + k.Type() + " is not certified (use ed25519, ECDSA or RSA of 2048 bits or more; not a certificate)"
}

// advertised is where agents reach the listener: Advertise, else the
// bound address (an unspecified host left empty for the client to fill).
func (l *Listener) advertised() (string, int) {
	addr := l.opts.Advertise
	if addr == "" && l.ln != nil {
		addr = l.ln.Addr().String()
	}
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	port, _ := strconv.Atoi(ps)
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		h = ""
	}
	return h, port
}

// revokeCert adds a serial to the revoked serials (admin groups only: the
// API checked the token's group before this runs) and records who did.
func (l *Listener) revokeCert(w http.ResponseWriter, r *http.Request) {
	p, err := l.deps.Verify(r.Context(), bearer(r))
	if err != nil {
		apiError(w, http.StatusUnauthorized, "unauthenticated", "the token was not accepted")
		return
	}
	var req RevokeRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "the body must be {\"serial\": \"123\"}")
		return
	}
	serial, err := strconv.ParseUint(strings.TrimSpace(req.Serial), 10, 64)
	if err != nil || serial == 0 {
		apiError(w, http.StatusBadRequest, "bad_serial", fmt.Sprintf("%q is not a certificate serial (a decimal number)", req.Serial))
		return
	}
	if l.revoked == nil {
		apiError(w, http.StatusNotFound, "no_revocations", "listener "+l.name+" has no revoked_serials file")
		return
	}
	sess := l.deps.NewSession(gate.SessionInfo{Protocol: "ssh", Listener: l.name, Remote: r.RemoteAddr})
	sess.SetPrincipal(p)
	open := sess.Row("")
	open.Request = map[string]string{"op": "revoke"}
	if err := sess.Open(open); err != nil {
		apiError(w, http.StatusServiceUnavailable, "audit_unavailable", "the revocation's row was not recorded: "+err.Error())
		return
	}
	row := sess.Row(KindRevoke)
	row.Request = map[string]string{"serial": strconv.FormatUint(serial, 10)}
	if req.Reason != "" {
		row.Request["reason"] = req.Reason
	}
	if err := l.revoked.add(serial, p.Subject); err != nil {
		row.Verdict, row.Status, row.Error = "error", "failed", err.Error()
		sess.Record(row)
		sess.Close("failed", err.Error())
		apiError(w, http.StatusInternalServerError, "not_revoked", err.Error())
		return
	}
	row.Verdict, row.Status = "allow", "revoked"
	sess.Record(row)
	sess.Close("revoked", "")
	sess.Log().Info("ssh certificate revoked", "serial", serial, "by", p.Subject)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"serial": strconv.FormatUint(serial, 10), "revoked": true})
}
