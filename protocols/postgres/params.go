package postgres

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Startup parameters. A client's StartupMessage carries settings two ways:
// as parameters of their own (search_path=app) and inside `options`, a
// command line for the server process (PGOPTIONS='-c search_path=app').
// The gateway reads both as PostgreSQL does, passes the settings on its
// list to the upstream session, and tells the client about the rest.

// startupSettingNames maps the lower-case name of each setting a client may
// set at startup to the spelling PostgreSQL uses.
var startupSettingNames = map[string]string{
	"client_encoding":                     "client_encoding",
	"datestyle":                           "DateStyle",
	"timezone":                            "TimeZone",
	"intervalstyle":                       "IntervalStyle",
	"extra_float_digits":                  "extra_float_digits",
	"search_path":                         "search_path",
	"statement_timeout":                   "statement_timeout",
	"lock_timeout":                        "lock_timeout",
	"idle_in_transaction_session_timeout": "idle_in_transaction_session_timeout",
	"default_transaction_isolation":       "default_transaction_isolation",
	"default_transaction_read_only":       "default_transaction_read_only",
	"work_mem":                            "work_mem",
}

// startupSettingList is the list as the notice's hint names it.
var startupSettingList = func() string {
	names := make([]string, 0, len(startupSettingNames)+1)
	for _, n := range startupSettingNames {
		names = append(names, n)
	}
	names = append(names, "application_name")
	sort.Slice(names, func(i, j int) bool { return asciiLower(names[i]) < asciiLower(names[j]) })
	return strings.Join(names, ", ")
}()

// droppedReasons explain the best-known refusals; anything else is simply
// not on the list.
var droppedReasons = map[string]string{
	"standard_conforming_strings": "it changes how string literals are read, so the gateway's policy would read statements differently from the server",
	"backslash_quote":             "it changes how string literals are read",
	"role":                        "the gateway chooses the role on the server",
	"session_authorization":       "the gateway chooses the role on the server",
}

const notAllowed = "not a setting a client may set through the gateway"

// startupSettings is what the gateway makes of a client's startup
// parameters.
type startupSettings struct {
	// pass holds the settings for the upstream session, by PostgreSQL's
	// spelling of the name, for pgconn's RuntimeParams.
	pass map[string]string
	// app is the application_name the client asked for ("" if none).
	app string
	// dropped are the settings and switches not passed on, with the
	// reason, in the order met; by name only, as a value could be anything.
	dropped []droppedSetting
	// protocolOptions are the _pq_.* protocol options the client asked
	// for; the gateway supports none (NegotiateProtocolVersion says so).
	protocolOptions []string
}

type droppedSetting struct{ name, reason string }

// filterStartup sorts a StartupMessage's parameters into what passes to
// the upstream and what does not. As in PostgreSQL, `options` is applied
// first and a parameter of its own overrides it.
func filterStartup(params map[string]string) startupSettings {
	s := startupSettings{pass: map[string]string{}}
	seen := map[droppedSetting]bool{}
	drop := func(name, reason string) {
		d := droppedSetting{name, reason}
		if !seen[d] {
			seen[d] = true
			s.dropped = append(s.dropped, d)
		}
	}
	set := func(name, value string) {
		lower := asciiLower(name)
		if lower == "application_name" {
			s.app = value
			return
		}
		canon, ok := startupSettingNames[lower]
		if !ok {
			r := droppedReasons[lower]
			if r == "" {
				r = notAllowed
			}
			drop(lower, r)
			return
		}
		switch canon {
		case "default_transaction_read_only":
			// A client may make its session read-only, never lift a
			// read-only default the DBA set on the role or database.
			if on, ok := parseBool(value); !ok || !on {
				drop(canon, "only on can be set: the gateway never lifts a read-only default")
				return
			}
			value = "on"
		case "client_encoding":
			if !asciiSafeEncoding(value) {
				drop(canon, "a client-only encoding, whose multibyte characters can hold quote and backslash bytes the gateway's policy would misread")
				return
			}
		}
		s.pass[canon] = value
	}

	opts, bad := parseStartupOptions(params["options"])
	for _, o := range opts {
		set(o.name, o.value)
	}
	for _, b := range bad {
		drop(b.name, b.reason)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "user" || k == "database" || k == "options" || k == "replication":
			// Protocol parameters, not settings: PostgreSQL matches
			// them exactly, and so does the gateway.
		case k == "fallback_application_name":
			if s.app == "" {
				s.app = params[k]
			}
		case strings.HasPrefix(k, "_pq_."):
			s.protocolOptions = append(s.protocolOptions, k)
		default:
			set(k, params[k])
		}
	}
	if app, ok := params["application_name"]; ok {
		s.app = app // the exact name wins over any other spelling
	}
	return s
}

// maxNoticeNames bounds the names a notice or an audit row lists: a
// startup packet can carry thousands.
const maxNoticeNames = 20

// droppedList is the dropped settings as one line, "name (reason); ...".
func (s *startupSettings) droppedList(withReasons bool) string {
	var b strings.Builder
	for i, d := range s.dropped {
		if i == maxNoticeNames {
			fmt.Fprintf(&b, "; and %d more", len(s.dropped)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(displayName(d.name))
		if withReasons {
			b.WriteString(" (" + d.reason + ")")
		}
	}
	return b.String()
}

// displayName shows a name a client chose as is when it looks like a
// setting, quoted and cut short otherwise.
func displayName(n string) string {
	plain := n != "" && len(n) <= 64
	for i := 0; plain && i < len(n); i++ {
		c := n[i]
		plain = c == '_' || c == '-' || c == '.' || c == ' ' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	if plain {
		return n
	}
	if len(n) > 64 {
		n = n[:64]
	}
	return strconv.QuoteToASCII(n)
}

// startupOption is one -c name=value or --name=value of `options`.
type startupOption struct{ name, value string }

// Switches of PostgreSQL's command line (postgres.c, process_postgres_switches):
// those that take an argument, and those that do not. The gateway passes
// none of them but must know which consume the next word.
const (
	switchesWithArg    = "BCDdfhkNprStvW"
	switchesWithoutArg = "bEeFijlnOPsT"
)

// parseStartupOptions reads the `options` startup parameter as PostgreSQL
// does: words split on unescaped white space (pg_split_opts), then read as
// the server's command line with getopt. -c name=value, -cname=value and
// --name=value are settings ('-' in a name reads as '_', as in
// ParseLongOption); every other switch or word is returned in bad, by its
// switch letter only.
func parseStartupOptions(options string) (opts []startupOption, bad []droppedSetting) {
	words := splitStartupOptions(options)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' {
			bad = append(bad, droppedSetting{"options", "a word that is not a switch"})
			continue
		}
		if w == "--" {
			bad = append(bad, droppedSetting{"options", "-- ends the switches; what follows is not passed"})
			for i++; i < len(words); i++ {
				bad = append(bad, droppedSetting{"options", "a word that is not a switch"})
			}
			break
		}
		// getopt: letters of one word until one takes an argument, which
		// is the rest of the word or else the next word.
		for j := 1; j < len(w); j++ {
			c := w[j]
			takesArg := c == 'c' || c == '-' || strings.IndexByte(switchesWithArg, c) >= 0
			if !takesArg {
				if strings.IndexByte(switchesWithoutArg, c) >= 0 {
					bad = append(bad, droppedSetting{"-" + string(c), "only -c name=value and --name=value pass"})
				} else {
					bad = append(bad, droppedSetting{"options", "an unknown switch"})
				}
				continue
			}
			arg, ok := w[j+1:], true
			if arg == "" {
				if i+1 < len(words) {
					i++
					arg = words[i]
				} else {
					ok = false
				}
			}
			if c != 'c' && c != '-' {
				bad = append(bad, droppedSetting{"-" + string(c), "only -c name=value and --name=value pass"})
				break
			}
			if !ok {
				bad = append(bad, droppedSetting{"-" + string(c), "requires name=value"})
				break
			}
			name, value, hasValue := strings.Cut(arg, "=")
			name = strings.ReplaceAll(name, "-", "_")
			if !hasValue {
				bad = append(bad, droppedSetting{asciiLower(name), "no value: write -c name=value"})
				break
			}
			opts = append(opts, startupOption{name, value})
			break
		}
	}
	return opts, bad
}

// splitStartupOptions is pg_split_opts: words separated by white space, a
// backslash takes the next character (space or backslash) literally, and
// a backslash at the very end is dropped.
func splitStartupOptions(s string) []string {
	var words []string
	var b strings.Builder
	inWord, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			b.WriteByte(c)
			escaped = false
		case c == '\\':
			escaped, inWord = true, true
		case isCSpace(c):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// isCSpace is C's isspace in the C locale, which pg_split_opts uses.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// asciiLower folds A-Z only, as PostgreSQL compares setting names; Unicode
// folding would match names the server rejects (a Kelvin sign for k).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// parseBool is PostgreSQL's parse_bool: any unambiguous prefix of true,
// false, yes, no, on (at least "on"), off (at least "of"), or 1 and 0.
func parseBool(v string) (value, ok bool) {
	l := asciiLower(v)
	prefixOf := func(word string, min int) bool {
		return len(l) >= min && len(l) <= len(word) && word[:len(l)] == l
	}
	switch {
	case prefixOf("true", 1), prefixOf("yes", 1), prefixOf("on", 2), l == "1":
		return true, true
	case prefixOf("false", 1), prefixOf("no", 1), prefixOf("off", 2), l == "0":
		return false, true
	}
	return false, false
}

// asciiSafeEncoding reports whether name (cleaned as PostgreSQL's
// pg_char_to_encoding cleans it) is a server encoding. In those every byte
// below 0x80 is the ASCII character, so a quote or backslash is what the
// policy sees it as; the client-only ones (SJIS, BIG5, GBK, UHC, GB18030,
// JOHAB, SHIFT_JIS_2004) put such bytes inside multibyte characters.
func asciiSafeEncoding(name string) bool {
	if len(name) >= 64 { // NAMEDATALEN: the server rejects it too
		return false
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	return serverEncodings[b.String()]
}

// serverEncodings are the names in PostgreSQL's pg_encname_tbl
// (src/common/encnames.c) of the encodings a server can use.
var serverEncodings = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`abc alt euccn eucjis2004 eucjp euckr euctw
		iso88591 iso885910 iso885913 iso885914 iso885915 iso885916 iso88592 iso88593
		iso88594 iso88595 iso88596 iso88597 iso88598 iso88599 koi8 koi8r koi8u
		latin1 latin10 latin2 latin3 latin4 latin5 latin6 latin7 latin8 latin9
		muleinternal sqlascii tcvn tcvn5712 unicode utf8 vscii win win1250 win1251
		win1252 win1253 win1254 win1255 win1256 win1257 win1258 win866 win874
		windows1250 windows1251 windows1252 windows1253 windows1254 windows1255
		windows1256 windows1257 windows1258 windows866 windows874`) {
		m[n] = true
	}
	return m
}()
