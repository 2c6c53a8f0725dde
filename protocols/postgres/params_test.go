package postgres

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseStartupOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		opts []startupOption
		bad  []string // names of what was not taken
	}{
		{"", nil, nil},
		{"-c search_path=app -c statement_timeout=5s",
			[]startupOption{{"search_path", "app"}, {"statement_timeout", "5s"}}, nil},
		{"  -csearch_path=app\t--lock-timeout=1s  ",
			[]startupOption{{"search_path", "app"}, {"lock_timeout", "1s"}}, nil},
		// A backslash keeps a space in the value and itself when doubled.
		{`-c search_path=a\ b,\\c -c x=`, []startupOption{{"search_path", `a b,\c`}, {"x", ""}}, nil},
		{`-c a=b\`, []startupOption{{"a", "b"}}, nil},
		// Only the name's dashes become underscores.
		{"--default-transaction-isolation=read-committed", []startupOption{{"default_transaction_isolation", "read-committed"}}, nil},
		// Other switches are dropped, and consume their argument as getopt does.
		{"-B 100 -e -c work_mem=4MB", []startupOption{{"work_mem", "4MB"}}, []string{"-B", "-e"}},
		{"-ec work_mem=4MB", []startupOption{{"work_mem", "4MB"}}, []string{"-e"}},
		{"-c role -c", nil, []string{"role", "-c"}},
		{"--role", nil, []string{"role"}},
		{"stray -c a=1 -x", []startupOption{{"a", "1"}}, []string{"options", "options"}},
		{"-c a=1 -- -c b=2", []startupOption{{"a", "1"}}, []string{"options", "options", "options"}},
		// -c takes the next word whatever it looks like.
		{"-c -c=1", []startupOption{{"_c", "1"}}, nil},
	} {
		opts, bad := parseStartupOptions(tc.in)
		var names []string
		for _, b := range bad {
			names = append(names, b.name)
		}
		if !reflect.DeepEqual(opts, tc.opts) || !reflect.DeepEqual(names, tc.bad) {
			t.Errorf("%q: got %v, bad %v; want %v, bad %v", tc.in, opts, bad, tc.opts, tc.bad)
		}
	}
}

func TestFilterStartup(t *testing.T) {
	s := filterStartup(map[string]string{
		"user": "agent", "database": "app", "application_name": "job",
		"options":                       `-c search_path=app -c ROLE=admin -c default_transaction_read_only=off -c statement_timeout=1s`,
		"SEARCH_PATH":                   "direct",   // a parameter of its own wins over options
		"datestyle":                     "ISO, MDY", // any case, passed with PostgreSQL's spelling
		"standard_conforming_strings":   "off",      // the policy's lexer depends on it
		"client_encoding":               "SJIS",     // client-only: 0x5c inside characters
		"wor\u212a_mem":                 "1GB",      // not work_mem to the server
		"_pq_.something":                "1",        // a protocol option
		"default_transaction_isolation": "serializable",
	})
	want := map[string]string{"search_path": "direct", "DateStyle": "ISO, MDY", "statement_timeout": "1s",
		"default_transaction_isolation": "serializable"}
	if !reflect.DeepEqual(s.pass, want) {
		t.Errorf("pass: %v", s.pass)
	}
	if s.app != "job" || !reflect.DeepEqual(s.protocolOptions, []string{"_pq_.something"}) {
		t.Errorf("app %q, protocol options %v", s.app, s.protocolOptions)
	}
	list := s.droppedList(false)
	for _, n := range []string{"role", "default_transaction_read_only", "standard_conforming_strings", "client_encoding", `"wor\u212a_mem"`} {
		if !strings.Contains(list, n) {
			t.Errorf("dropped %q, missing %s", list, n)
		}
	}
	if strings.Contains(list, "search_path") || strings.Contains(list, "_pq_") || strings.Contains(list, "admin") {
		t.Errorf("dropped %q", list)
	}

	// Read-only only towards on, in any spelling PostgreSQL takes.
	for v, pass := range map[string]bool{"on": true, "TRUE": true, "y": true, "1": true, "t": true,
		"off": false, "o": false, "0": false, "no": false, "maybe": false, "": false} {
		s := filterStartup(map[string]string{"default_transaction_read_only": v})
		if got := s.pass["default_transaction_read_only"]; (got == "on") != pass || len(s.dropped) == 0 == !pass {
			t.Errorf("read_only=%q: pass %q, dropped %v", v, got, s.dropped)
		}
	}
	for v, pass := range map[string]bool{"UTF8": true, "utf-8": true, "Latin1": true, "SQL_ASCII": true, "EUC_JP": true,
		"SJIS": false, "Shift_JIS": false, "win932": false, "BIG5": false, "GBK": false, "GB18030": false, "UHC": false, "JOHAB": false,
		"SHIFT_JIS_2004": false, "auto": false} {
		s := filterStartup(map[string]string{"client_encoding": v})
		if _, ok := s.pass["client_encoding"]; ok != pass {
			t.Errorf("client_encoding=%q: passed %v", v, ok)
		}
	}

	// Thousands of unknown names make a bounded list.
	many := map[string]string{}
	for i := 0; i < 1000; i++ {
		many[strings.Repeat("x", i%100)+string(rune('a'+i%26))+strings.Repeat("\x01", i%3)] = "v"
	}
	ms := filterStartup(many)
	if l := ms.droppedList(true); len(l) > 8<<10 || !strings.Contains(l, "more") {
		t.Errorf("%d bytes: %.200s", len(l), l)
	}
}

// What parses as settings, written back with PostgreSQL's escapes,
// parses to the same settings; nothing panics.
func FuzzStartupOptions(f *testing.F) {
	for _, s := range []string{
		"-c search_path=app -c statement_timeout=5s",
		`--search-path=a\ b -c x=\\\ y\`,
		"-B 1 -ec a=b -- c",
		"-c\t-c=1\n--x",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts, _ := parseStartupOptions(s)
		var b strings.Builder
		for _, o := range opts {
			if strings.Contains(o.name, "=") || strings.Contains(o.name, "-") {
				t.Fatalf("%q: name %q", s, o.name)
			}
			b.WriteString(" -c ")
			for _, part := range []string{o.name, "=", o.value} {
				for i := 0; i < len(part); i++ {
					if part[i] == '\\' || isCSpace(part[i]) {
						b.WriteByte('\\')
					}
					b.WriteByte(part[i])
				}
			}
		}
		again, bad := parseStartupOptions(b.String())
		if len(bad) != 0 || !reflect.DeepEqual(opts, again) && !(len(opts) == 0 && len(again) == 0) {
			t.Fatalf("%q → %v → %q → %v %v", s, opts, b.String(), again, bad)
		}
		// Whatever the client wrote, what passes is on the list, once.
		st := filterStartup(map[string]string{"options": s})
		for k := range st.pass {
			if startupSettingNames[asciiLower(k)] != k {
				t.Fatalf("%q passed %q", s, k)
			}
		}
	})
}
