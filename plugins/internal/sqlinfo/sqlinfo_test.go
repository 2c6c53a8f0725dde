package sqlinfo

import (
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		stmts       []Statement
		classes     string
		noWhere     bool
		notReadOnly string
	}{
		{[]Statement{{Class: "read", Command: "SELECT"}}, "read", false, ""},
		{[]Statement{{Class: "transaction", Command: "BEGIN"}, {Class: "session", Command: "SET"}}, "transaction,session", false, ""},
		{[]Statement{{Class: "write", Command: "MERGE"}}, "write", true, "MERGE (write)"},
		{[]Statement{{Class: "write", Command: "MERGE", HasWhere: true}}, "write", false, "MERGE (write)"},
		{[]Statement{{Class: "write", Command: "DELETE", HasWhere: true}, {Class: "write", Command: "UPDATE"}}, "write,write", true, "DELETE (write)"},
		{[]Statement{{Class: "read", Command: "SELECT"}, {Class: "dcl", Command: "DISCARD ALL"}}, "read,dcl,lift_read_only", false, "DISCARD ALL (dcl)"},
		{[]Statement{{Class: "lock", Command: "LOCK"}}, "lock", false, "LOCK (lock)"},
		{[]Statement{{Class: "lift_read_only", Command: "BEGIN"}}, "lift_read_only", false, "BEGIN (lift_read_only)"},
		{[]Statement{{Class: "unknown"}}, "unknown", false, "unrecognised statement (unknown)"},
		{[]Statement{{Class: "someday", Command: "X"}}, "someday", false, "X (someday)"},
	} {
		in := Of(tc.stmts)
		if got := strings.Join(in.Rules.Classes, ","); got != tc.classes || in.Rules.WithoutWhere != tc.noWhere || in.NotReadOnly != tc.notReadOnly {
			t.Errorf("%+v: classes %q without_where %v not_read_only %q", tc.stmts, got, in.Rules.WithoutWhere, in.NotReadOnly)
		}
	}
}
