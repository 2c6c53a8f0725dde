package http

import (
	"strings"
	"testing"
)

func TestStripQueryTokens(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	for _, c := range []struct{ in, bearer, want, removed string }{
		{"a=1&access_token=zzz&b=%20x", "", "a=1&b=%20x", "access_token"},
		{"x=" + jwt + "&page_token=abc", "", "page_token=abc", "x"},
		{"q=Bearer%20opaque-123&r=2", "opaque-123", "r=2", "q"},
		{"ID_TOKEN=1", "", "", "ID_TOKEN"},
		{"plain=1&k", "", "plain=1&k", ""},
	} {
		got, removed := stripQueryTokens(c.in, c.bearer)
		if got != c.want || strings.Join(removed, ",") != c.removed {
			t.Errorf("stripQueryTokens(%q) = %q %v, want %q %q", c.in, got, removed, c.want, c.removed)
		}
	}
}

func TestRefusedUpgrade(t *testing.T) {
	allowed := []string{"websocket"}
	for _, c := range []struct{ up, want string }{
		{"websocket", ""},
		{"WebSocket/13", ""},
		{"h2c", "h2c"},
		{"websocket, h2c", "h2c"},
		{"", ""},
	} {
		h := map[string][]string{}
		if c.up != "" {
			h["Upgrade"] = []string{c.up}
		}
		if got := refusedUpgrade(h, allowed); got != c.want {
			t.Errorf("Upgrade %q: refused %q, want %q", c.up, got, c.want)
		}
	}
}
