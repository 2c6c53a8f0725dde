package plugin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A record-only mask also searches the value JSON-unescaped and
// percent-decoded, mixed.
func TestRecordDecoded(t *testing.T) {
	for in, want := range map[string]string{
		`{"t":"ghp\u005fabc"}`:       `{"t":"ghp_abc"}`,
		`{"t":"ghp\u005Fabc"}`:       `{"t":"ghp_abc"}`,
		`a\/b`:                       `a/b`,
		`{"q":"\u0022\u005c\u0001"}`: `{"q":"\u0022\u005c\u0001"}`, // needed escapes stay
		`\\u005f`:                    `\\u005f`,                    // an escaped backslash, then text
		`\\\u005f`:                   `\\_`,
		`\ud83d\ude00`:               `\ud83d\ude00`, // surrogates stay
		`\u00e9\u005`:                `é\u005`,
		`t=ghp%5Cu005fabc`:           `t=ghp_abc`, // percent, then JSON
		`t=ghp\u0025\u0035Fabc`:      `t=ghp_abc`, // JSON, then percent
		`trailing\`:                  `trailing\`,
		"":                           "",
	} {
		if got := recordDecoded(in); got != want {
			t.Errorf("recordDecoded(%q) = %q, want %q", in, got, want)
		}
	}
}

// jsonUnescaped keeps valid JSON valid, with the same meaning, and never
// fails on anything else.
func FuzzJSONUnescaped(f *testing.F) {
	for _, s := range []string{`{"a":"ghp\u005fx"}`, `"\\u005f"`, `["\u0022", "\/"]`, `"\ud83d\ude00"`, `\u12`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := jsonUnescaped(s)
		if len(out) > len(s) {
			t.Fatalf("%q grew to %q", s, out)
		}
		if !json.Valid([]byte(s)) {
			return
		}
		a, err := decodeJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeJSON(out)
		if err != nil {
			t.Fatalf("%q became invalid JSON %q: %v", s, out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%q means %v, unescaped %q means %v", s, a, out, b)
		}
	})
}

// decodeJSON keeps numbers as written (1e700 is valid JSON, not a float64).
func decodeJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	return v, d.Decode(&v)
}
