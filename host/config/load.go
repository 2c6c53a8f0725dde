package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tollgate-dev/tollgate/host/config/internal/tomlpos"
)

var errNotString = errors.New("expected a string or an array of strings")

// Problem is one thing wrong with a config file.
type Problem struct {
	File      string
	Line, Col int
	Path      string // the key it is about, e.g. "listeners[0].listen"
	Message   string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
}

// Problems is every problem found in one file. It is the error type
// returned by Load, Parse and ResolveSecrets.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// source remembers the file a config came from, to place later problems.
type source struct {
	name  string
	dir   string
	index *tomlpos.Index
}

type pathProblem struct{ path, msg string }

type problemList []pathProblem

func (l *problemList) add(path, format string, args ...any) {
	*l = append(*l, pathProblem{path, fmt.Sprintf(format, args...)})
}

// problems places each path problem in the file; nil when there are none.
func (s source) problems(l problemList) error {
	if len(l) == 0 {
		return nil
	}
	out := make(Problems, 0, len(l))
	for _, p := range l {
		pos := tomlpos.Pos{Line: 1, Col: 1}
		if s.index != nil {
			pos, _ = s.index.Lookup(p.path)
		}
		msg := p.msg
		if p.path != "" {
			msg = p.path + ": " + msg
		}
		out = append(out, Problem{File: s.name, Line: pos.Line, Col: pos.Col, Path: p.path, Message: msg})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Col < out[j].Col
	})
	return out
}

// Load reads and validates the file at path. Relative paths inside it
// resolve against the file's directory.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(filepath.Base(path), src, filepath.Dir(path))
}

// document is the file as the first pass decodes it: each [[targets]]
// and [[listeners]] table stays raw (these fields shadow Config's) until
// its protocol is known and can decode its own keys.
type document struct {
	Config
	Targets   []toml.Primitive `toml:"targets"`
	Listeners []toml.Primitive `toml:"listeners"`
}

// Parse decodes and validates src; name is used in problems and dir anchors
// relative paths. Each [[listeners]] and [[targets]] table is decoded
// twice: into the keys every protocol has, and into the options of its
// protocol (see [RegisterProtocol]). The error, when not nil, is
// [Problems].
func Parse(name string, src []byte, dir string) (*Config, error) {
	s := source{name: name, dir: dir}
	var doc document
	md, err := toml.NewDecoder(strings.NewReader(string(src))).Decode(&doc)
	if err != nil {
		return nil, Problems{decodeProblem(name, src, err)}
	}
	s.index = tomlpos.Scan(src)
	c := doc.Config
	c.src = s

	var ps problemList
	c.Targets = make([]Target, len(doc.Targets))
	for i, prim := range doc.Targets {
		t := &c.Targets[i]
		opts, err := decodeTable(&ps, md, prim, fmt.Sprintf("targets[%d]", i), "target", t, &t.Protocol, Protocol.targetOptions)
		if err != nil {
			return nil, Problems{decodeProblem(name, src, err)}
		}
		t.Options = opts
	}
	c.Listeners = make([]Listener, len(doc.Listeners))
	for i, prim := range doc.Listeners {
		l := &c.Listeners[i]
		opts, err := decodeTable(&ps, md, prim, fmt.Sprintf("listeners[%d]", i), "listener", l, &l.Protocol, Protocol.listenerOptions)
		if err != nil {
			return nil, Problems{decodeProblem(name, src, err)}
		}
		l.Options = opts
	}

	unknownKeys(&ps, md, s.index)
	// Ranges before defaults: a written value is honoured or refused,
	// never replaced by a default.
	c.checkRanges(&ps, func(path string) bool { _, ok := s.index.Lookup(path); return ok })
	c.applyDefaults()
	c.validate(&ps)
	if err := s.problems(ps); err != nil {
		return nil, err
	}
	return &c, nil
}

var lineInError = regexp.MustCompile(`line (\d+)`)

// decodeProblem turns a syntax or type error from the decoder into a Problem.
func decodeProblem(name string, src []byte, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		p := Problem{File: name, Line: max(pe.Position.Line, 1), Col: max(pe.Position.Col, 1), Message: msg}
		// The decoder's line is off by one when the error is a newline (it
		// counts the newline into the next line); the byte offset is exact.
		if st := pe.Position.Start; st > 0 && st <= len(src) {
			p.Line = bytes.Count(src[:st], []byte("\n")) + 1
			p.Col = st - (bytes.LastIndexByte(src[:st], '\n') + 1) + 1
		}
		return p
	}
	p := Problem{File: name, Line: 1, Col: 1, Message: strings.TrimPrefix(err.Error(), "toml: ")}
	if m := lineInError.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
	}
	return p
}

// unknownKeys reports every key that decoded into nothing. The decoder
// names keys without array indices, so the index supplies each place the
// key is written.
func unknownKeys(ps *problemList, md toml.MetaData, ix *tomlpos.Index) {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		if len(k) >= 2 && k[0] == "plugins" && k[1] == "config" {
			continue // each plugin's own table belongs to the plugin
		}
		if len(k) >= 1 && (k[0] == "listeners" || k[0] == "targets") {
			continue // tableKeys judged these, table by table
		}
		undecoded[strings.Join(k, ".")] = true
	}
	if len(undecoded) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, path := range ix.Paths() {
		bare := stripIndices(path)
		if !undecoded[bare] {
			continue
		}
		// Report the outermost unknown key only, not each key inside it.
		if parent := parentPath(bare); undecoded[parent] {
			continue
		}
		seen[bare] = true
		msg := "unknown key"
		if s := suggest(bare); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		ps.add(path, "%s", msg)
	}
	// Keys the index could not place still get reported.
	for bare := range undecoded {
		if !seen[bare] && !undecoded[parentPath(bare)] {
			ps.add(bare, "unknown key")
		}
	}
}

var indexSuffix = regexp.MustCompile(`\[\d+\]`)

func stripIndices(path string) string { return indexSuffix.ReplaceAllString(path, "") }

func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// decodeTable decodes one [[targets]] or [[listeners]] table: into
// common (a *Target or *Listener, whose protocol field is proto), then,
// when the protocol is registered, into the options newOpts makes for it,
// which it returns (nil for an unknown protocol, which validate reports,
// or a protocol without options of this kind). Then it judges the
// table's keys against both.
func decodeTable(ps *problemList, md toml.MetaData, prim toml.Primitive, path, kind string, common any, proto *string, newOpts func(Protocol) func() Options) (Options, error) {
	var keys map[string]any
	if err := md.PrimitiveDecode(prim, &keys); err != nil {
		return nil, err
	}
	if err := md.PrimitiveDecode(prim, common); err != nil {
		return nil, err
	}
	p, ok := LookupProtocol(*proto)
	if !ok {
		return nil, nil // keys of an unknown protocol are not judged
	}
	var opts Options
	if mk := newOpts(p); mk != nil {
		opts = mk()
		if err := md.PrimitiveDecode(prim, opts); err != nil {
			return nil, err
		}
	}
	tableKeys(ps, path, keys, kind, p.Name, reflect.TypeOf(common).Elem(), optionsType(newOpts(p)))
	return opts, nil
}

// tableKeys reports the keys of one [[listeners]] or [[targets]] table
// (keys, as decoded into a map) that neither the common struct nor the
// protocol's options take, with a "did you mean" from both, and, for a
// key another protocol's table takes at its top, which one (proto is ""
// below the top). The decoder names keys without
// array indices, so a key one listener takes would hide the same key
// unknown to another; this is why each table is judged on its own.
func tableKeys(ps *problemList, path string, keys map[string]any, kind, proto string, types ...reflect.Type) {
	for _, k := range sortedKeys(keys) {
		f, ok := fieldIn(k, types)
		if !ok {
			msg := "unknown key"
			if others := otherProtocols(k, kind, proto); proto != "" && others != "" {
				msg += ": applies to " + others + " " + kind + "s only"
			} else if s := closest(k, types); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", stripIndices(path)+"."+s)
			}
			ps.add(path+"."+k, "%s", msg)
			continue
		}
		ft := structType(f.Type)
		if ft == nil {
			continue
		}
		switch v := keys[k].(type) {
		case map[string]any:
			tableKeys(ps, path+"."+k, v, kind, "", ft)
		case []map[string]any:
			for i, e := range v {
				tableKeys(ps, fmt.Sprintf("%s.%s[%d]", path, k, i), e, kind, "", ft)
			}
		case []any:
			for i, e := range v {
				if m, ok := e.(map[string]any); ok {
					tableKeys(ps, fmt.Sprintf("%s.%s[%d]", path, k, i), m, kind, "", ft)
				}
			}
		}
	}
}

// otherProtocols names the registered protocols, other than proto, whose
// tables of kind take key at the top level ("postgres"), for a message
// that says where the key belongs.
func otherProtocols(key, kind, proto string) string {
	var out []string
	for _, name := range Protocols() {
		if name == proto {
			continue
		}
		p, _ := LookupProtocol(name)
		newOpts := p.listenerOptions()
		if kind == "target" {
			newOpts = p.targetOptions()
		}
		if t := optionsType(newOpts); t != nil {
			if _, ok := fieldByTag(t, key); ok {
				out = append(out, name)
			}
		}
	}
	return strings.Join(out, " and ")
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fieldIn(key string, types []reflect.Type) (reflect.StructField, bool) {
	for _, t := range types {
		if t == nil {
			continue
		}
		if f, ok := fieldByTag(t, key); ok {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	tomlUnmarshaler = reflect.TypeOf((*toml.Unmarshaler)(nil)).Elem()
)

// structType is the struct a field's sub-table decodes into (through
// pointers and slices), or nil when the field is a value: a scalar, a
// map, or a type that decodes itself (Duration, Secret, Patterns).
func structType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if p := reflect.PointerTo(t); p.Implements(textUnmarshaler) || p.Implements(tomlUnmarshaler) {
		return nil
	}
	return t
}

// closest is the tag among the types' fields at most two edits from key.
func closest(key string, types []reflect.Type) string {
	var tags []string
	for _, t := range types {
		if t == nil {
			continue
		}
		for i := 0; i < t.NumField(); i++ {
			if tag := tomlName(t.Field(i)); tag != "" {
				tags = append(tags, tag)
			}
		}
	}
	return Closest(key, tags)
}

// Closest is the first of names at most two edits from key, for a "did
// you mean" after an unknown key; "" when none is that close. Keys
// longer than 64 bytes get no suggestion, which bounds the work.
func Closest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// suggest returns the known key closest to an unknown one, if any is close.
func suggest(bare string) string {
	parts := strings.Split(bare, ".")
	t := reflect.TypeOf(Config{})
	for _, seg := range parts[:len(parts)-1] {
		f, ok := fieldByTag(t, seg)
		if !ok {
			return ""
		}
		t = f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
	}
	best := closest(parts[len(parts)-1], []reflect.Type{t})
	if best == "" {
		return ""
	}
	parts[len(parts)-1] = best
	return strings.Join(parts, ".")
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if tomlName(t.Field(i)) == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func tomlName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

// editDistance is the Levenshtein distance between two short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ProblemAt places a message about the key at path (e.g.
// "plugins[1].config.rules[0].methods") in the config's file, as Parse
// places its own problems: for checks made outside this package, such as
// a plugin's config against the schema the plugin declares. A path not
// written in the file is placed at its nearest written parent.
func (c *Config) ProblemAt(path, msg string) Problem {
	ps, _ := c.src.problems(problemList{{path, msg}}).(Problems)
	return ps[0]
}
