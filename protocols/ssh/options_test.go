package ssh

import (
	"strings"
	"testing"
)

func TestParseUser(t *testing.T) {
	def := func(target string) string {
		if target == "web" {
			return "deploy"
		}
		return ""
	}
	for _, tc := range []struct{ user, login, target, err string }{
		{"deploy@web", "deploy", "web", ""},
		{"web", "deploy", "web", ""},
		{"db", "", "db", "no login for target db"},
		{"a@b@web", "", "web", "not a valid login"},
		{"-oProxyCommand=x@web", "", "web", "not a valid login"},
		{"root@", "", "", "not a target name"},
		{"root@../etc", "", "", "not a target name"},
		{"", "", "", "not a target name"},
	} {
		login, target, err := ParseUser(tc.user, def)
		if login != tc.login || (tc.err == "" && target != tc.target) || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseUser(%q) = %q, %q, %v; want %q, %q, %q", tc.user, login, target, err, tc.login, tc.target, tc.err)
		}
	}
}

// FuzzParseUser: whatever the client sends as its user name, what comes
// back is a valid login and target or an error.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"deploy@web", "web", "@", "a@b@c", "x\x00@y", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		login, target, err := ParseUser(user, func(string) string { return "deploy" })
		if err == nil && (!validLogin.MatchString(login) || !validTarget.MatchString(target)) {
			t.Fatalf("ParseUser(%q) = %q, %q", user, login, target)
		}
	})
}

func TestMergeAnnotation(t *testing.T) {
	m := map[string]string{}
	for _, a := range [][2]string{{"n", "2"}, {"n", "3"}, {"d", "aws=1,jwt=2"}, {"d", "jwt=1,pem=1"}, {"x", "a"}, {"x", "b"}, {"d2", "aws=1"}, {"d2", "oops"}} {
		mergeAnnotation(m, a[0], a[1])
	}
	if m["n"] != "5" || m["d"] != "aws=1,jwt=3,pem=1" || m["x"] != "b" || m["d2"] != "oops" {
		t.Fatalf("%v", m)
	}
}
