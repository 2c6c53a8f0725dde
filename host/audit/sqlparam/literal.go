package sqlparam

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// supported are the types a placeholder may name.
var supported = []string{"String", "DateTime", "Date", "UUID",
	"UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64", "Float64"}

// Supported reports whether typ is a placeholder type this package binds.
func Supported(typ string) bool { return slices.Contains(supported, typ) }

// Literal is value as a ClickHouse expression of type typ that every
// server since 18.16 reads the same way.
//
// DateTime accepts RFC 3339 (2026-12-07T21:00:00Z), "2026-12-07
// 21:00:00" and "2026-12-07" (both UTC), "now", and a negative duration
// back from now ("-24h"). It becomes toDateTime(<Unix seconds>): a
// number means the same instant whatever the server's time zone, where
// a text time would be read in that zone.
func Literal(typ, value string, now time.Time) (string, error) {
	switch typ {
	case "String":
		return Quote(value), nil
	case "DateTime":
		t, err := parseTime(value, now)
		if err != nil {
			return "", err
		}
		if t.Unix() < 0 || t.Unix() > math.MaxUint32 {
			return "", fmt.Errorf("%q is outside DateTime's range (1970 to 2106)", value)
		}
		return fmt.Sprintf("toDateTime(%d)", t.Unix()), nil
	case "Date":
		t, err := time.Parse("2006-01-02", value)
		if err != nil || t.Year() < 1970 || t.Year() > 2105 {
			return "", fmt.Errorf("%q is not a date such as 2026-12-07", value)
		}
		return "toDate(" + Quote(t.Format("2006-01-02")) + ")", nil
	case "UUID":
		if !audit.IsID(value) {
			return "", fmt.Errorf("%q is not a UUID such as 0f6c3a52-2f59-4f4e-9d8e-3c8c1e0a4b21", value)
		}
		return "toUUID(" + Quote(strings.ToLower(value)) + ")", nil
	case "Float64":
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("%q is not a finite number", value)
		}
		return "toFloat64(" + strconv.FormatFloat(f, 'g', -1, 64) + ")", nil
	}
	if bits, ok := strings.CutPrefix(typ, "UInt"); ok {
		n, err := strconv.ParseUint(value, 10, atoi(bits))
		if err != nil {
			return "", fmt.Errorf("%q is not a %s", value, typ)
		}
		return fmt.Sprintf("to%s(%d)", typ, n), nil
	}
	if bits, ok := strings.CutPrefix(typ, "Int"); ok {
		n, err := strconv.ParseInt(value, 10, atoi(bits))
		if err != nil {
			return "", fmt.Errorf("%q is not an %s", value, typ)
		}
		return fmt.Sprintf("to%s(%d)", typ, n), nil
	}
	return "", fmt.Errorf("type %q is not one of %s", typ, strings.Join(supported, ", "))
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Quote is s as a ClickHouse string literal. Backslash and quote are the
// characters that end or change a literal, and NUL is written \0 because
// chDB takes the query as a C string, where a raw NUL ends it; every
// other byte stands for itself.
func Quote(s string) string {
	return "'" + quoter.Replace(s) + "'"
}

var quoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)

func parseTime(v string, now time.Time) (time.Time, error) {
	if v == "now" {
		return now, nil
	}
	if strings.HasPrefix(v, "-") {
		if d, err := time.ParseDuration(v); err == nil {
			return now.Add(d), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2026-12-07T21:00:00Z), '2026-12-07 21:00:00' (UTC), 2026-12-07, now, or a duration back from now (-24h)", v)
}
