package ssh

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
)

// The extensions of a certificate the gateway issues: who it was issued
// to, so that a connection with it maps back to the Principal the token
// gave (the access rules see the same issuer, subject, groups and
// claims). sshd and the OpenSSH client ignore extensions they do not
// know.
const (
	ExtIssuer  = "tollgate-iss@tollgate"    // the configured issuer's name
	ExtSubject = "tollgate-sub@tollgate"    // the token's sub
	ExtEmail   = "tollgate-email@tollgate"  // the issuer's email claim, when any
	ExtGroups  = "tollgate-groups@tollgate" // JSON array
	ExtClaims  = "tollgate-claims@tollgate" // JSON object: every scalar claim, for the access rules
	ExtKept    = "tollgate-kept@tollgate"   // JSON object: the claims the issuer keeps for the audit trail
)

// maxCertBytes bounds a certificate: a token with thousands of claims
// would make one too large to send (x/crypto's packet limit is 256 KiB).
const maxCertBytes = 32 << 10

// certSkew is how far in the past a certificate starts, for clocks
// behind the gateway's.
const certSkew = time.Minute

// newSerial is a random serial, non-zero and below 2^63 (so that it is
// the same number in JSON, ClickHouse and a shell).
func newSerial() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("ssh: certificate serial: %w", err)
		}
		if s := binary.BigEndian.Uint64(b[:]) >> 1; s != 0 {
			return s, nil
		}
	}
}

// signCert signs a user certificate for key with the CA.
func signCert(ca xssh.Signer, key xssh.PublicKey, p *event.Principal, serial uint64, keyID string, principals []string, after, before time.Time) (*xssh.Certificate, error) {
	ext := map[string]string{ExtIssuer: p.Issuer, ExtSubject: p.Subject}
	if p.Email != "" {
		ext[ExtEmail] = p.Email
	}
	for name, v := range map[string]any{ExtGroups: p.Groups, ExtClaims: p.Claims, ExtKept: p.Kept} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("ssh: certificate extension %s: %w", name, err)
		}
		ext[name] = string(b)
	}
	c := &xssh.Certificate{
		Key: key, Serial: serial, CertType: xssh.UserCert, KeyId: keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(after.Unix()), ValidBefore: uint64(before.Unix()),
		Permissions: xssh.Permissions{Extensions: ext},
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("ssh: sign certificate: %w", err)
	}
	if n := len(c.Marshal()); n > maxCertBytes {
		return nil, fmt.Errorf("ssh: the token's claims make a certificate of %d bytes (at most %d)", n, maxCertBytes)
	}
	return c, nil
}

// principalFromCert is the Principal a certificate the gateway signed
// was issued to.
func principalFromCert(c *xssh.Certificate) (*event.Principal, error) {
	ext := c.Permissions.Extensions
	p := &event.Principal{Issuer: ext[ExtIssuer], Subject: ext[ExtSubject], Email: ext[ExtEmail]}
	if p.Issuer == "" || p.Subject == "" {
		return nil, errors.New("the certificate names no issuer or subject")
	}
	for name, v := range map[string]any{ExtGroups: &p.Groups, ExtClaims: &p.Claims, ExtKept: &p.Kept} {
		if s, ok := ext[name]; ok {
			if err := json.Unmarshal([]byte(s), v); err != nil {
				return nil, fmt.Errorf("the certificate's extension %s: %w", name, err)
			}
		}
	}
	if p.Claims == nil {
		p.Claims = map[string]string{}
	}
	if p.Kept == nil {
		p.Kept = map[string]string{}
	}
	return p, nil
}

// sameKey reports whether a and b are the same public key.
func sameKey(a, b xssh.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
}

// certTime formats a certificate time for people.
func certTime(t uint64) string {
	if t == xssh.CertTimeInfinity {
		return "forever"
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}

// revocations is the listener's list of revoked certificate serials: a
// file with one decimal serial per line ('#' starts a comment). It is
// read again whenever its size or modification time changes, so an edit
// or `gateway ssh revoke` takes effect at the next login without a
// reload. A file that cannot be read refuses every certificate (fail
// closed); a missing file revokes nothing.
type revocations struct {
	path string

	mu    sync.Mutex
	stamp string // size and mtime of what set holds
	set   map[uint64]bool
	err   error
}

// revoked reports whether serial is revoked; an error means the list
// could not be read.
func (r *revocations) revoked(serial uint64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return false, err
	}
	return r.set[serial], nil
}

func (r *revocations) refresh() error {
	fi, err := os.Stat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		r.stamp, r.set, r.err = "", nil, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("ssh: revoked serials %s: %w", r.path, err)
	}
	stamp := strconv.FormatInt(fi.Size(), 10) + "/" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	if stamp == r.stamp && r.err == nil && r.set != nil {
		return nil
	}
	r.set, r.err = readRevocations(r.path)
	r.stamp = stamp
	return r.err
}

func readRevocations(path string) (map[uint64]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ssh: revoked serials %s: %w", path, err)
	}
	defer f.Close()
	set := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, err := strconv.ParseUint(line, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("ssh: revoked serials %s:%d: %q is not a serial (a decimal number)", path, n, line)
		}
		set[s] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ssh: revoked serials %s: %w", path, err)
	}
	return set, nil
}

// add appends serial to the file (made 0600 when missing), with a
// comment saying who revoked it and when.
func (r *revocations) add(serial uint64, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ssh: revoke: %w", err)
	}
	by = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, by)
	line := fmt.Sprintf("%d # revoked by %s at %s\n", serial, by, time.Now().UTC().Format(time.RFC3339))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("ssh: revoke: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ssh: revoke: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ssh: revoke: %w", err)
	}
	r.stamp = "" // read it again
	return nil
}

// principalsFor lists, sorted, what a certificate's ValidPrincipals say.
func principalsFor(targets []CertTarget, login string) []string {
	var out []string
	for _, t := range targets {
		if login != "" {
			out = append(out, login+"@"+t.Name)
		} else {
			out = append(out, t.Name)
		}
	}
	sort.Strings(out)
	return out
}
