package ssh_test

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/identity"
)

// tokenOfLength mints a token of exactly n bytes, padding a claim; false
// when base64's steps skip n.
func (e *env) tokenOfLength(t testing.TB, n int) (string, bool) {
	t.Helper()
	mint := func(pad int) string {
		tok, err := e.iss.Mint(identity.MintOptions{Subject: "agent", Groups: []string{"agents"}, Claims: map[string]any{"pad": strings.Repeat("x", pad)}})
		must(t, err)
		return tok
	}
	// Each byte of padding adds 4/3 of a byte: start just below n.
	base := len(mint(0))
	for pad := max(0, (n-base)*3/4-4); pad < n; pad++ {
		tok := mint(pad)
		if len(tok) == n {
			return tok, true
		}
		if len(tok) > n {
			return "", false
		}
	}
	return "", false
}

// OpenSSH keeps 1023 bytes of an askpass answer; longer tokens (GitHub
// Actions' often are) arrive in pieces through "continued from byte N"
// prompts, which the shipped examples/ssh/tollgate-askpass answers. Every
// length works, around and at the multiples of 1023.
func TestLongTokensThroughAskpass(t *testing.T) {
	e := startEnv(t, envOptions{})
	lengths := []int{}
	for _, n := range []int{1022, 1023, 1024, 1025, 2045, 2046, 2047, 2048, 3069, 5000} {
		if _, ok := e.tokenOfLength(t, n); ok {
			lengths = append(lengths, n)
		}
	}
	exact := 0
	for _, n := range lengths {
		if n%1023 == 0 {
			exact++
		}
	}
	if exact == 0 || len(lengths) < 5 {
		t.Fatalf("could not mint tokens of the lengths that matter: %v", lengths)
	}
	for _, n := range lengths {
		tok, _ := e.tokenOfLength(t, n)
		r := e.ssh(t, tok, e.sshd.User+"@box", nil, "echo ok")
		if r.code != 0 || string(r.stdout) != "ok\n" {
			t.Errorf("token of %d bytes: code %d stdout %q stderr %q", n, r.code, r.stdout, r.stderr)
		}
	}

	// The password method has one answer: a cut token is refused with
	// the reason and the way out.
	tok, _ := e.tokenOfLength(t, lengths[len(lengths)-1])
	cmd := e.sshCmd(tok, e.sshd.User+"@box", "echo ok")
	for i, a := range cmd.Args {
		if a == "PreferredAuthentications=keyboard-interactive" {
			cmd.Args[i] = "PreferredAuthentications=password"
		}
	}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "the ssh client cuts a password at 1023 bytes: use keyboard-interactive") {
		t.Fatalf("password with a long token: %q", out)
	}
}
