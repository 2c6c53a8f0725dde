package sqlclass

import "strings"

// How an object kind names its target table.
const (
	tblNone = iota
	tblName // the object's own name(s): TABLE, VIEW, SEQUENCE, ...
	tblOn   // the table after ON: TRIGGER, POLICY
)

type objKind struct {
	words []string // lower-case keywords after the verb
	class Class
	tbl   uint8
	cmds  [3]string // CREATE, ALTER, DROP command strings
}

// objKinds lists the object kinds of CREATE/ALTER/DROP. Multi-word kinds
// come before their one-word prefixes.
var objKinds = []objKind{
	{words: []string{"access", "method"}, class: DDL},
	{words: []string{"aggregate"}, class: DDL},
	{words: []string{"cast"}, class: DDL},
	{words: []string{"collation"}, class: DDL},
	{words: []string{"conversion"}, class: DDL},
	{words: []string{"database"}, class: DDL},
	{words: []string{"default", "privileges"}, class: DCL},
	{words: []string{"domain"}, class: DDL},
	{words: []string{"event", "trigger"}, class: Admin},
	{words: []string{"extension"}, class: Admin},
	{words: []string{"foreign", "data", "wrapper"}, class: Admin},
	{words: []string{"foreign", "table"}, class: DDL, tbl: tblName},
	{words: []string{"function"}, class: DDL},
	{words: []string{"group"}, class: DCL},
	{words: []string{"index"}, class: DDL, tbl: tblName},
	{words: []string{"language"}, class: Admin},
	{words: []string{"large", "object"}, class: DDL},
	{words: []string{"materialized", "view"}, class: DDL, tbl: tblName},
	{words: []string{"operator"}, class: DDL},
	{words: []string{"owned"}, class: DCL},
	{words: []string{"policy"}, class: DCL, tbl: tblOn},
	{words: []string{"procedure"}, class: DDL},
	{words: []string{"publication"}, class: DDL},
	{words: []string{"role"}, class: DCL},
	{words: []string{"routine"}, class: DDL},
	{words: []string{"rule"}, class: DDL},
	{words: []string{"schema"}, class: DDL},
	{words: []string{"sequence"}, class: DDL, tbl: tblName},
	{words: []string{"server"}, class: DDL},
	{words: []string{"statistics"}, class: DDL},
	{words: []string{"subscription"}, class: Admin},
	{words: []string{"system"}, class: Admin},
	{words: []string{"table"}, class: DDL, tbl: tblName},
	{words: []string{"tablespace"}, class: Admin},
	{words: []string{"text", "search"}, class: DDL},
	{words: []string{"transform"}, class: DDL},
	{words: []string{"trigger"}, class: DDL, tbl: tblOn},
	{words: []string{"type"}, class: DDL},
	{words: []string{"user", "mapping"}, class: DCL},
	{words: []string{"user"}, class: DCL},
	{words: []string{"view"}, class: DDL, tbl: tblName},
}

func init() {
	for i := range objKinds {
		k := &objKinds[i]
		suffix := strings.ToUpper(strings.Join(k.words, " "))
		k.cmds = [3]string{"CREATE " + suffix, "ALTER " + suffix, "DROP " + suffix}
	}
}

// ddl classifies CREATE, ALTER and DROP (verb is lower-case).
func (c *ctx) ddl(t []token, verb string) result {
	v := 0
	i := 1
	switch verb {
	case "create":
		if c.kw(t, i, "or") && c.kw(t, i+1, "replace") {
			i += 2
		}
		for c.kw(t, i, "temp") || c.kw(t, i, "temporary") || c.kw(t, i, "unlogged") ||
			c.kw(t, i, "global") || c.kw(t, i, "local") || c.kw(t, i, "unique") ||
			c.kw(t, i, "recursive") || c.kw(t, i, "trusted") || c.kw(t, i, "procedural") ||
			c.kw(t, i, "constraint") || c.kw(t, i, "default") && c.kw(t, i+1, "conversion") {
			i++
		}
	case "alter":
		v = 1
	case "drop":
		v = 2
	}
	var kind *objKind
	for k := range objKinds {
		ok := true
		for n, w := range objKinds[k].words {
			if !c.kw(t, i+n, w) {
				ok = false
				break
			}
		}
		if ok {
			kind = &objKinds[k]
			break
		}
	}
	if kind == nil {
		return unknown(strings.ToUpper(verb))
	}
	r := result{class: kind.class, cmd: kind.cmds[v]}
	i += len(kind.words)
	tbl := kind.tbl
	if kind.words[0] == "index" && v == 0 {
		tbl = tblOn
	}
	switch tbl {
	case tblName:
		i = c.skipIfExists(t, i)
		if c.kw(t, i, "concurrently") {
			i++
			i = c.skipIfExists(t, i)
		}
		if v == 2 {
			c.nameList(t, i, &r)
		} else {
			c.target(t, i, &r)
		}
	case tblOn:
		if k := c.topKw(t, i, "on"); k >= 0 {
			c.target(t, k+1, &r)
		}
	}
	c.scan(t[1:], &r, false)
	return r
}
