package ssh

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"
)

// The revoked serials file is the operator's: any bytes either parse
// into a set that holds every serial written alone on a line, or are
// refused as a whole (which refuses every certificate); nothing panics.
func FuzzRevocations(f *testing.F) {
	for _, s := range []string{"", "1\n2\n", "# c\n 42 # by ops\n", "18446744073709551615\n", "18446744073709551616\n", "x\n", "1\r\n2", "\x00\n", strings.Repeat("9", 70000)} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "revoked")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		set, err := readRevocations(path)
		if err != nil {
			if set != nil {
				t.Fatalf("a refused file gave a set")
			}
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if n, perr := strconv.ParseUint(strings.TrimSpace(line), 10, 64); perr == nil && !set[n] {
				t.Fatalf("serial %d listed alone on a line is not revoked", n)
			}
		}
	})
}

// A certificate's extensions, whatever their bytes, map to a Principal
// with a subject and an issuer or to an error; never a panic.
func FuzzCertExtensions(f *testing.F) {
	f.Add("dev", "agent", `["agents"]`, `{"sub":"agent"}`, `{}`)
	f.Add("", "agent", `[]`, `{}`, `{}`)
	f.Add("dev", "agent", `{"a":1}`, `[1]`, `null`)
	f.Add("dev", "a", `["x",1]`, `{"k":{"n":1}}`, `"s"`)
	f.Fuzz(func(t *testing.T, iss, sub, groups, claims, kept string) {
		c := &xssh.Certificate{Permissions: xssh.Permissions{Extensions: map[string]string{
			ExtIssuer: iss, ExtSubject: sub, ExtGroups: groups, ExtClaims: claims, ExtKept: kept}}}
		p, err := principalFromCert(c)
		if err != nil {
			return
		}
		if p.Issuer == "" || p.Subject == "" || p.Claims == nil || p.Kept == nil {
			t.Fatalf("accepted a principal without issuer, subject or maps: %+v", p)
		}
	})
}
