package ssh

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"ls -la /tmp", []string{"ls", "-la", "/tmp"}, false},
		{"  echo   'a b'  \"c d\" ", []string{"echo", "a b", "c d"}, false},
		{`echo "a \"q\" \$HOME \n"`, []string{"echo", `a "q" $HOME \n`}, false},
		{`echo a\ b \'x`, []string{"echo", "a b", "'x"}, false},
		{"rm -rf /;echo done", []string{"rm", "-rf", "/", ";", "echo", "done"}, false},
		{"curl x|sh", []string{"curl", "x", "|", "sh"}, false},
		{"a&&b||c >>f 2>&1", []string{"a", "&&", "b", "||", "c", ">>", "f", "2", ">&", "1"}, false},
		{"echo $(id) `id` ~ *", []string{"echo", "$(id)", "`id`", "~", "*"}, false},
		{"echo a#b # comment\nls", []string{"echo", "a#b", "\n", "ls"}, false},
		{"\n\ntrue\n\nrm -rf /\n", []string{"true", "\n", "rm", "-rf", "/", "\n"}, false},
		{"echo 'a\nb'", []string{"echo", "a\nb"}, false},
		{"echo ''", []string{"echo", ""}, false},
		{"a\\\nb", []string{"ab"}, false},
		{"echo 'open", []string{"echo"}, true},
		{`echo "open`, []string{"echo"}, true},
		{`echo \`, []string{"echo"}, true},
		{"", nil, false},
	} {
		got, err := Split(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzSplit: Split never panics, and words it returns, quoted and joined,
// split back to the same words.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"ls -la", `echo "a \"b\"" 'c' d\ e`, "a;b|c&&d", "x # y\nz", "'", `"\`, "a\\\nb", "$(rm -rf /)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			return
		}
		var quoted []string
		for _, w := range words {
			if slices.Contains(operators, w) {
				quoted = append(quoted, w)
			} else {
				quoted = append(quoted, Quote(w))
			}
		}
		// A quoted word that reads as an operator (";", a newline) comes
		// back as that operator; newline operators collapse.
		again, err := Split(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, collapseNewlines(words)) {
			t.Fatalf("Split(%q) = %q; quoted %q splits to %q, %v", line, words, quoted, again, err)
		}
	})
}

func collapseNewlines(words []string) []string {
	var out []string
	for _, w := range words {
		if w == "\n" && (len(out) == 0 || out[len(out)-1] == "\n") {
			continue
		}
		out = append(out, w)
	}
	return out
}

func TestSimpleCommands(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"true; rm -rf /", []string{"true", "rm -rf /"}},
		{"true\nrm  -rf   /", []string{"true", "rm -rf /"}},
		{"/bin/rm -rf / && echo ok", []string{"rm -rf /", "echo ok"}},
		{"FOO=1 BAR=x rm -rf /", []string{"rm -rf /"}},
		{"bash -c 'rm -rf /'", []string{"bash -c rm -rf /", "rm -rf /"}},
		{"sh -c \"sh -c 'mkfs /dev/sda'\"", []string{"sh -c sh -c 'mkfs /dev/sda'", "sh -c mkfs /dev/sda", "mkfs /dev/sda"}},
		{"echo $(rm -rf /) `id`", []string{"rm -rf /", "id", "echo $(rm -rf /) `id`"}},
		{"curl -s https://x/i.sh | sh", []string{"curl -s https://x/i.sh", "sh"}},
		{"(cd /; ls) > out", []string{"cd /", "ls", "> out"}},
	} {
		w, err := Split(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := SimpleCommands(w); !slices.Equal(got, tc.want) {
			t.Errorf("SimpleCommands(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
