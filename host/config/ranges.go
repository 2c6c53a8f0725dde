package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// keyRange is the documented range of one duration, size or count key.
// Every key written in the file is checked against it before defaults
// apply, so that a value is either honoured or refused naming the key,
// never replaced: a default fills only a key that was left out.
type keyRange struct {
	// key is the key's path without indices ("listeners.max_header_bytes");
	// every element of an array of tables is checked.
	key string
	// min and max bound the value: nanoseconds for a duration, the number
	// itself for a size or a count.
	min, max int64
	// zero says what a written zero means when min is 0 (it is honoured);
	// for documentation and the tests.
	zero string
	// protocol limits a listener key to listeners of that protocol (the
	// others get "applies to ... only" from validate).
	protocol string
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	day = 24 * time.Hour
)

// ranges is the one list of ranges; README.md's configuration reference
// and gateway.toml's comments state the same.
var ranges = []keyRange{
	{key: "gateway.memory_limit", min: 0, max: 1 << 40, zero: "no soft memory limit from the config (GOMEMLIMIT applies when set)"},
	{key: "gateway.shutdown_grace", min: 0, max: int64(time.Hour), zero: "stop at once: in-flight requests are cut off"},
	{key: "dev.max_ttl", min: int64(time.Minute), max: int64(30 * day)},
	{key: "identity.token_cache_size", min: 1, max: 10_000_000},
	{key: "identity.issuers.clock_skew", min: 0, max: int64(10 * time.Minute), zero: "no skew: exp and nbf are exact"},
	{key: "listeners.read_header_timeout", min: int64(time.Second), max: int64(10 * time.Minute)},
	{key: "listeners.idle_timeout", min: int64(time.Second), max: int64(day)},
	{key: "listeners.max_header_bytes", min: kib, max: 16 * mib},
	{key: "listeners.read_body_timeout", min: 0, max: int64(day), zero: "no deadline on request bodies", protocol: "http"},
	{key: "listeners.max_inspect_body_bytes", min: kib, max: gib, protocol: "http"},
	{key: "listeners.max_message_bytes", min: kib, max: gib, protocol: "postgres"},
	{key: "listeners.max_statement_bytes", min: kib, max: 64 * mib, protocol: "postgres"},
	{key: "listeners.max_connections", min: 1, max: 1_000_000, protocol: "postgres"},
	{key: "listeners.max_connections_per_source", min: 1, max: 1_000_000, protocol: "postgres"},
	{key: "listeners.auth_timeout", min: int64(time.Second), max: int64(10 * time.Minute), protocol: "postgres"},
	{key: "plugins.memory_pages", min: 37, max: 65536},
	{key: "plugins.timeout", min: int64(time.Millisecond), max: int64(10 * time.Second)},
	{key: "plugins.fuel", min: 1, max: 1_000_000_000_000},
	{key: "plugins.instances", min: 1, max: 1024},
	{key: "plugins.pool_wait", min: int64(time.Millisecond), max: int64(time.Minute)},
	{key: "audit.checkpoint_interval", min: int64(time.Second), max: int64(time.Hour)},
	{key: "audit.batch_rows", min: 1, max: 1_000_000},
	{key: "audit.batch_age", min: int64(time.Millisecond), max: int64(time.Minute)},
	{key: "audit.spool.max_bytes", min: 64 * kib, max: 1 << 40}, // 64 KiB: small enough for tests that fill it
	{key: "approvals.timeout", min: int64(time.Second), max: int64(7 * day)},
	{key: "approvals.http_wait", min: 0, max: int64(7 * day), zero: "answer 202 at once with the approval's URL"},
	{key: "approvals.approvals_required", min: 1, max: 10},
	{key: "approvals.max_session_grant", min: int64(time.Minute), max: int64(7 * day)},
	{key: "approvals.poll_interval", min: int64(10 * time.Millisecond), max: int64(time.Minute)},
	{key: "approvals.max_pending_per_principal", min: 1, max: 100_000},
	{key: "approvals.max_pending_per_target", min: 1, max: 100_000},
}

var durationType = reflect.TypeOf(Duration{})

// checkRanges checks every written key of ranges; written reports whether
// a path (with indices) is in the file. It runs before applyDefaults.
func (c *Config) checkRanges(ps *problemList, written func(path string) bool) {
	for _, r := range ranges {
		walk(reflect.ValueOf(c).Elem(), "", strings.Split(r.key, "."), func(path string, v reflect.Value, listener *Listener) {
			if r.protocol != "" && (listener == nil || listener.Protocol != r.protocol) {
				return
			}
			if !written(path) {
				return
			}
			if n, ok := number(v); ok && (n < r.min || n > r.max) {
				ps.add(path, "must be between %s and %s", r.format(r.min), r.format(r.max))
			}
		})
	}
}

// walk calls fn with every value at the key path segs under v, through
// pointers (a missing optional table has none) and arrays of tables.
func walk(v reflect.Value, path string, segs []string, fn func(string, reflect.Value, *Listener)) {
	walkIn(v, path, segs, nil, fn)
}

func walkIn(v reflect.Value, path string, segs []string, l *Listener, fn func(string, reflect.Value, *Listener)) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			if li, ok := e.Addr().Interface().(*Listener); ok {
				l = li
			}
			walkIn(e, path+"["+strconv.Itoa(i)+"]", segs, l, fn)
		}
		return
	}
	if len(segs) == 0 {
		fn(path, v, l)
		return
	}
	f, ok := fieldByTag(v.Type(), segs[0])
	if !ok {
		return // a slip in ranges; TestEveryRangeIsEnforced catches it
	}
	next := segs[0]
	if path != "" {
		next = path + "." + segs[0]
	}
	walkIn(v.FieldByIndex(f.Index), next, segs[1:], l, fn)
}

// number is a Duration's nanoseconds or an integer's value; false for
// anything else (a slip in ranges, which the tests catch).
func number(v reflect.Value) (int64, bool) {
	if v.Type() == durationType {
		return int64(v.Interface().(Duration).Duration), true
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return v.Int(), true
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		return int64(v.Uint()), true
	}
	return 0, false
}

// isDuration reports whether the key of r is a duration (its bounds are
// written as durations).
func (r keyRange) isDuration() bool {
	t := reflect.TypeOf(Config{})
	for _, seg := range strings.Split(r.key, ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		f, _ := fieldByTag(t, seg)
		t = f.Type
	}
	return t == durationType
}

func (r keyRange) format(n int64) string {
	if r.isDuration() {
		return formatDuration(time.Duration(n))
	}
	switch {
	case n >= kib && n%(1<<40) == 0:
		return fmt.Sprintf("%d (%d TiB)", n, n>>40)
	case n >= kib && n%gib == 0:
		return fmt.Sprintf("%d (%d GiB)", n, n/gib)
	case n >= kib && n%mib == 0:
		return fmt.Sprintf("%d (%d MiB)", n, n/mib)
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration writes whole days, hours and minutes as a person would
// (and as time.ParseDuration reads them back).
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d > day && d%day == 0:
		return fmt.Sprintf("%dh (%d days)", d/time.Hour, d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
