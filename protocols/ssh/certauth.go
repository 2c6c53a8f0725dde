package ssh

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
)

// certLogin is what a certificate login established, carried from the
// publickey callback to the connection in the Permissions of the
// successful method: x/crypto calls the callback before the client has
// proved it holds the key, so nothing is set on the connection until
// the handshake has succeeded with this method.
type certLogin struct {
	principal *event.Principal
	login     string
	target    *target
	rule      string
	serial    string
	keyID     string
}

type certLoginKey struct{}

// publicKey accepts a user certificate signed by the listener's CA: not
// expired, not yet valid or revoked, naming the target (or login@target)
// among its principals, for a principal the access rules grant the login
// now. A refusal reaches the client as a banner, names the serial in the
// refused row and counts against the source address. A plain key is
// refused without a banner and without counting: clients offer their
// agent's keys before other methods.
func (c *conn) publicKey(meta xssh.ConnMetadata, key xssh.PublicKey) (*xssh.Permissions, error) {
	l := c.l
	cert, ok := key.(*xssh.Certificate)
	if !ok {
		if c.authErr == "" {
			c.authErr = "a plain public key is not accepted: use a certificate from `gateway ssh login`, or the OIDC token"
		}
		return nil, errors.New("not a certificate")
	}
	serial := strconv.FormatUint(cert.Serial, 10)
	c.certSerial, c.certKeyID = serial, cert.KeyId
	refuse := func(why string, count bool) (*xssh.Permissions, error) {
		return c.refuse("certificate serial "+serial+": "+why, count)
	}
	if l.limit.blocked(c.remote) {
		return refuse("too many failed authentications from "+c.remote+"; try again later", false)
	}
	ca := l.ca.Load()
	if ca == nil {
		return refuse("this listener accepts no certificates", true)
	}
	caKey := (*ca).PublicKey()
	if cert.CertType != xssh.UserCert {
		return refuse("not a user certificate", true)
	}
	if !sameKey(cert.SignatureKey, caKey) {
		return refuse("not signed by this gateway's SSH CA (signed by "+xssh.FingerprintSHA256(cert.SignatureKey)+"; get one with `gateway ssh login`)", true)
	}
	login, tname, err := ParseUser(meta.User(), l.defaultLogin)
	if err != nil {
		return refuse(err.Error(), true)
	}
	// The principal that lets the user in: login@target names one login,
	// target alone any login the rules grant at use.
	pr := login + "@" + tname
	if !slices.Contains(cert.ValidPrincipals, pr) {
		pr = tname
	}
	if !slices.Contains(cert.ValidPrincipals, pr) {
		return refuse("it does not reach "+login+"@"+tname+" (its principals: "+strings.Join(cert.ValidPrincipals, ", ")+")", true)
	}
	checker := xssh.CertChecker{IsUserAuthority: func(k xssh.PublicKey) bool { return sameKey(k, caKey) }}
	if err := checker.CheckCert(pr, cert); err != nil {
		now := uint64(time.Now().Unix())
		switch {
		case now < cert.ValidAfter:
			return refuse("not valid before "+certTime(cert.ValidAfter), true)
		case cert.ValidBefore != xssh.CertTimeInfinity && now >= cert.ValidBefore:
			return refuse("expired at "+certTime(cert.ValidBefore)+": get a new one with `gateway ssh login`", true)
		}
		return refuse(strings.TrimPrefix(err.Error(), "ssh: "), true)
	}
	if l.revoked != nil {
		revoked, err := l.revoked.revoked(cert.Serial)
		if err != nil {
			c.sess.Log().Error("revoked serials not read: refusing certificates", "err", err)
			return refuse("the gateway cannot read its revoked serials; try again later", false)
		}
		if revoked {
			return refuse("revoked", true)
		}
	}
	p, err := principalFromCert(cert)
	if err != nil {
		return refuse(err.Error(), true)
	}
	t := l.targets[tname]
	if t == nil {
		return refuse("unknown target "+tname, true)
	}
	d := l.grant(p, tname, login)
	if !d.Allowed {
		return refuse("access denied: login "+login+" on target "+tname+": "+d.Reason, true)
	}
	c.authErr = ""
	return &xssh.Permissions{ExtraData: map[any]any{certLoginKey{}: &certLogin{
		principal: p, login: login, target: t, rule: d.Rule, serial: serial, keyID: cert.KeyId}}}, nil
}
