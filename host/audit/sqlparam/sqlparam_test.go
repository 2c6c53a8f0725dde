package sqlparam

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)

func TestBind(t *testing.T) {
	sql := "-- {ignored:String} in a comment\nSELECT '{lit:String}', `{id:String}` FROM events\n" +
		"WHERE subject = {who:String} AND ts >= {from:DateTime} AND ts < {to:DateTime} AND seq > {n:UInt64} AND who = { who : String } /* {x} */"
	got, err := Bind(sql, map[string]string{"who": `x' OR 1=1 --\`, "from": "2026-12-07", "to": "-1h", "n": "3"}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "-- {ignored:String} in a comment\nSELECT '{lit:String}', `{id:String}` FROM events\n" +
		`WHERE subject = 'x\' OR 1=1 --\\' AND ts >= toDateTime(1796601600) AND ts < toDateTime(1796673600) AND seq > toUInt64(3) AND who = 'x\' OR 1=1 --\\' /* {x} */`
	if got != want {
		t.Fatalf("Bind:\n%s\nwant\n%s", got, want)
	}
	ps, err := Params(sql)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Param{{"who", "String"}, {"from", "DateTime"}, {"to", "DateTime"}, {"n", "UInt64"}}; !reflect.DeepEqual(ps, want) {
		t.Errorf("Params = %v, want %v", ps, want)
	}
}

// A value is bound once: placeholders, quotes, question marks and
// comment marks inside it stay text.
func TestValueIsNeverSQL(t *testing.T) {
	got, err := Bind("SELECT {a:String}, {b:String}", map[string]string{"a": "{b:String}' -- ?", "b": `\'; DROP TABLE events; --`}, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := `SELECT '{b:String}\' -- ?', '\\\'; DROP TABLE events; --'`; got != want {
		t.Fatalf("Bind = %s, want %s", got, want)
	}
}

// Every refusal names what is wrong.
func TestBindErrors(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		values map[string]string
		want   string
	}{
		{"SELECT {a:String}, {b:DateTime}", map[string]string{"a": "x"}, "missing parameter b (DateTime)"},
		{"SELECT {a:String}", map[string]string{"a": "x", "typo": "y"}, "unknown parameter typo: the query takes a (String)"},
		{"SELECT 1", map[string]string{"a": "x"}, "unknown parameter a: the query takes no parameters"},
		{"SELECT {from}", nil, "placeholder {from} has no type"},
		{"SELECT {a:Map}", nil, `type "Map" is not one of`},
		{"SELECT {a:String}, {a:UInt8}", nil, "parameter a is used as String and as UInt8"},
		{"SELECT {a:String", nil, "without '}'"},
		{"SELECT {1a:String}", nil, "is not a parameter name"},
		{"SELECT {n:UInt8}", map[string]string{"n": "300"}, `parameter n: "300" is not a UInt8`},
		{"SELECT {n:Int64}", map[string]string{"n": "1 OR 1"}, `is not an Int64`},
		{"SELECT {t:DateTime}", map[string]string{"t": "yesterday"}, `"yesterday" is not a time`},
		{"SELECT {t:DateTime}", map[string]string{"t": "1960-01-01"}, "outside DateTime's range"},
		{"SELECT {u:UUID}", map[string]string{"u": "x') OR ('1"}, "is not a UUID"},
		{"SELECT {f:Float64}", map[string]string{"f": "NaN"}, "not a finite number"},
	} {
		_, err := Bind(tc.sql, tc.values, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Bind(%q, %v) = %v, want an error with %q", tc.sql, tc.values, err, tc.want)
		}
	}
}

func TestLiteralTypes(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{"DateTime", "2026-12-07T22:00:00+01:00", "toDateTime(1796677200)"},
		{"DateTime", "2026-12-07 21:00:00", "toDateTime(1796677200)"},
		{"DateTime", "now", "toDateTime(1796677200)"},
		{"Date", "2026-12-07", "toDate('2026-12-07')"},
		{"UUID", "0F6C3A52-2F59-4F4E-9D8E-3C8C1E0A4B21", "toUUID('0f6c3a52-2f59-4f4e-9d8e-3c8c1e0a4b21')"},
		{"Int32", "-5", "toInt32(-5)"},
		{"Float64", "1.5", "toFloat64(1.5)"},
		{"String", "a\nb'c", `'a` + "\n" + `b\'c'`},
		{"String", "a\x00b\\", `'a\0b\\'`},
	} {
		got, err := Literal(tc.typ, tc.in, now)
		if err != nil || got != tc.want {
			t.Errorf("Literal(%s, %q) = %q, %v; want %q", tc.typ, tc.in, got, err, tc.want)
		}
	}
}
