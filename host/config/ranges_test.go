package config

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rangesConfig has every table a ranged key lives in; "#@name" marks the
// line after which a test writes a key.
const rangesConfig = `
[gateway] #@gateway
id = "gw"

[dev] #@dev

[identity] #@identity
[[identity.issuers]] #@identity.issuers
name = "corp"
issuer = "https://idp.example.com"
audience = ["tollgate"]

[[targets]]
name = "api"
protocol = "fake"
upstream = "http://127.0.0.1:9000"

[[listeners]]
name = "http"
protocol = "fake"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"

[[access]]
name = "all"
targets = ["api"]

[[plugins]] #@plugins
name = "guard"
path = "guard.wasm"

[admin]
listen = "127.0.0.1:8090"

[approvals] #@approvals

[audit] #@audit
store = "clickhouse"
[audit.clickhouse]
addrs = ["127.0.0.1:9000"]
[audit.spool] #@audit.spool
`

// marker is where r's key is written in rangesConfig, and the key's own
// name in its table.
func (r keyRange) marker() (mark, leaf string) {
	i := strings.LastIndexByte(r.key, '.')
	return r.key[:i], r.key[i+1:]
}

// value writes n as r's key takes it in TOML.
func (r keyRange) value(n int64) string {
	if r.isDuration() {
		return strconv.Quote(time.Duration(n).String())
	}
	return strconv.FormatInt(n, 10)
}

// parsed returns the value of r's key in c (its first occurrence).
func (r keyRange) parsed(c *Config) (int64, bool) {
	var got int64
	found := false
	walk(reflect.ValueOf(c).Elem(), "", strings.Split(r.key, "."), func(_ string, v reflect.Value) {
		if found {
			return
		}
		got, found = number(v)
	})
	return got, found
}

func TestRangesConfigParses(t *testing.T) {
	c := mustParse(t, rangesConfig)
	for _, r := range ranges {
		n, ok := r.parsed(c)
		if !ok {
			t.Errorf("%s: not in the config, or not a number", r.key)
			continue
		}
		// Left out, a key gets its default, which is in its range.
		if n < r.min || n > r.max {
			t.Errorf("%s: default %s is outside %s..%s", r.key, r.value(n), r.format(r.min), r.format(r.max))
		}
	}
}

// Every ranged key, written as zero, below its minimum, above its
// maximum and negative, is either honoured (a zero in range) or refused
// with a problem that names the key and the range; never replaced by a
// default.
func TestEveryRangeIsEnforced(t *testing.T) {
	for _, r := range ranges {
		mark, leaf := r.marker()
		if !strings.Contains(rangesConfig, "#@"+mark+"\n") {
			t.Errorf("%s: rangesConfig has no #@%s", r.key, mark)
			continue
		}
		unit := int64(1)
		if r.isDuration() {
			unit = int64(time.Millisecond) // a value the range can refuse by a clear margin
			if r.min > 0 && r.min < unit {
				unit = r.min
			}
		}
		cases := map[string]int64{"zero": 0, "above max": r.max + unit, "negative": -unit}
		if r.min > unit {
			cases["below min"] = r.min - unit
		}
		for name, n := range cases {
			src := strings.Replace(rangesConfig, "#@"+mark+"\n", "#@"+mark+"\n"+leaf+" = "+r.value(n)+"\n", 1)
			c, err := Parse("gateway.toml", []byte(src), t.TempDir())
			inRange := n >= r.min && n <= r.max
			if inRange {
				if err != nil {
					t.Errorf("%s = %s (%s): refused though in range: %v", r.key, r.value(n), name, err)
					continue
				}
				if got, _ := r.parsed(c); got != n {
					t.Errorf("%s = %s (%s): became %s, want it honoured", r.key, r.value(n), name, r.value(got))
				}
				if r.zero == "" && n == 0 {
					t.Errorf("%s: zero is in range but ranges does not say what it means", r.key)
				}
				continue
			}
			ps, ok := err.(Problems)
			if !ok {
				t.Errorf("%s = %s (%s): err %v, want a problem", r.key, r.value(n), name, err)
				continue
			}
			want := leaf + ": must be between " + r.format(r.min) + " and " + r.format(r.max)
			if r.key == "plugins.memory_pages" && n < 0 {
				want = leaf + ": -1 is out of range for uint32" // refused by the decoder
			}
			line := strings.Count(src[:strings.Index(src, "#@"+mark+"\n")], "\n") + 2
			found := false
			for _, p := range ps {
				found = found || (strings.Contains(p.Message, want) && p.Line == line)
			}
			if !found {
				t.Errorf("%s = %s (%s): no problem %q at line %d; got:\n%v", r.key, r.value(n), name, want, line, ps)
			}
		}
	}
}

// The reference config states every range as ranges has it.
func TestRangesAreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../examples/gateway.full.toml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range ranges {
		_, leaf := r.marker()
		want := "[range " + r.format(r.min) + " to " + r.format(r.max)
		found := false
		lines := strings.Split(doc, "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, leaf+" ") && !strings.HasPrefix(l, leaf+"=") {
				continue
			}
			// The range ends the key's comment, which may go on for a line or two.
			for j := i; j < min(i+3, len(lines)); j++ {
				found = found || strings.Contains(lines[j], want)
			}
		}
		if !found {
			t.Errorf("examples/gateway.full.toml: no %q on a %s line", want, leaf)
		}
	}
}
