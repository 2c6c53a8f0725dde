package main

import (
	"io"
	"testing"
)

// A command's one positional argument may come before or after its
// flags; a second one is a usage error.
func TestParseNamed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		name string
		err  error
	}{
		{[]string{"s1", "--speed", "2"}, "s1", nil},
		{[]string{"--speed", "2", "s1"}, "s1", nil},
		{[]string{"--speed", "2"}, "", nil},
		{[]string{"s1", "s2"}, "", errUsage},
		{[]string{"--speed", "2", "s1", "s2"}, "", errUsage},
		{[]string{"--nope"}, "", errUsage},
	} {
		fs := newFlags("x", "x", io.Discard)
		speed := fs.Float64("speed", 1, "")
		name, err := parseNamed(fs, tc.args)
		if err != tc.err || err == nil && (name != tc.name || *speed != 2) {
			t.Errorf("%q: name %q speed %v err %v, want %q %v", tc.args, name, *speed, err, tc.name, tc.err)
		}
	}
}
