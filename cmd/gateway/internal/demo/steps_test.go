package demo

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
)

// serve --dev makes the credential files [dev] needs, once: an existing
// file (the operator's, or an earlier run's) is never replaced, an env:
// reference is left to the operator, and what it writes only its user
// may read.
func TestMakeCredentials(t *testing.T) {
	dir := t.TempDir()
	echo, pw := filepath.Join(dir, "sub", "echo"), filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("the-operator's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Dev: &config.Dev{EchoToken: config.Secret{Ref: "file:" + echo}, Postgres: "db"},
		Targets: []config.Target{
			{Name: "other", Credential: config.Credential{Password: config.Secret{Ref: "file:" + filepath.Join(dir, "other")}}},
			{Name: "db", Credential: config.Credential{Password: config.Secret{Ref: "file:" + pw}}},
		},
	}
	made, err := MakeCredentials(cfg)
	if err != nil || len(made) != 1 || made[0] != echo {
		t.Fatalf("made %v, %v; want only %s", made, err, echo)
	}
	st, err := os.Stat(echo)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the echo token: %v %v", st, err)
	}
	first, _ := os.ReadFile(echo)
	if len(strings.TrimSpace(string(first))) < 32 {
		t.Fatalf("a short credential: %q", first)
	}
	if b, _ := os.ReadFile(pw); string(b) != "the-operator's\n" {
		t.Fatalf("an existing credential was replaced: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Fatal("a credential of a target [dev] does not name was made")
	}
	// Again: nothing new, nothing replaced.
	if made, err := MakeCredentials(cfg); err != nil || len(made) != 0 {
		t.Fatalf("second run made %v, %v", made, err)
	}
	if again, _ := os.ReadFile(echo); string(again) != string(first) {
		t.Fatal("the echo token was made again")
	}
	cfg.Dev.EchoToken.Ref = "env:SOME_TOKEN"
	os.Remove(echo)
	if made, err := MakeCredentials(cfg); err != nil || len(made) != 0 {
		t.Fatalf("env: reference: made %v, %v", made, err)
	}
}

// reachable decides whether the postgres user can enter the demo
// database's directory, or whether it must live elsewhere.
func TestReachable(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(base, &st); err != nil {
		t.Fatal(err)
	}
	other := &syscall.Credential{Uid: st.Uid + 4242, Gid: st.Gid + 4242}
	owner := &syscall.Credential{Uid: st.Uid, Gid: st.Gid + 4242}
	for _, tc := range []struct {
		mode os.FileMode
		who  *syscall.Credential
		want bool
	}{
		{0o755, other, true},
		{0o711, other, true}, // search without listing is enough
		{0o700, other, false},
		{0o750, other, false},
		{0o700, owner, true},
		{0o070, owner, false}, // the owner's bits apply to the owner
	} {
		d := filepath.Join(base, "d")
		os.Mkdir(d, 0o700)
		if err := os.Chmod(d, tc.mode); err != nil {
			t.Fatal(err)
		}
		if got := reachable(filepath.Join(d, "x"), tc.who); got != tc.want {
			t.Errorf("mode %o for uid %d: reachable %v, want %v", tc.mode, tc.who.Uid, got, tc.want)
		}
	}
}
