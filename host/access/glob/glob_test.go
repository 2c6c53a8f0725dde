package glob

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, value string
		want           bool
	}{
		{"acme/app", "acme/app", true},
		{"acme/app", "acme/app2", false},
		{"acme/*", "acme/app", true},
		{"acme/*", "acme/app/sub", false},
		{"acme/**", "acme/app/sub", true},
		{"refs/heads/*", "refs/heads/main", true},
		{"refs/heads/*", "refs/heads/feature/x", false},
		{"refs/heads/**", "refs/heads/feature/x", true},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/main", true},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/dev", false},
		{"v?", "v1", true},
		{"v?", "v12", false},
		{"a?b", "a/b", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{`lit\*`, "lit*", true},
		{`lit\*`, "litx", false},
		{"*.example.com", "api.example.com", true},
		{"**", "any/thing/at/all", true},
	} {
		if got := Match(tc.pattern, tc.value); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.value, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(`ok\*`); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := Validate(`bad\`); err == nil {
		t.Error("Validate accepted a trailing escape")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("acme/**", "acme/a/b")
	f.Add(`a\`, "a")
	f.Fuzz(func(t *testing.T, pattern, value string) {
		// A pattern with no metacharacters must behave as equality.
		if Match(pattern, value) && Validate(pattern) == nil {
			plain := true
			for i := 0; i < len(pattern); i++ {
				if c := pattern[i]; c == '*' || c == '?' || c == '\\' {
					plain = false
				}
			}
			if plain && pattern != value {
				t.Fatalf("plain pattern %q matched %q", pattern, value)
			}
		}
	})
}
