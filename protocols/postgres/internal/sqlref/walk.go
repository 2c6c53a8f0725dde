package sqlref

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// uses is a set of Use, one bit each, in the order of useOf. A position
// in the tree carries the uses of every enclosing context (a subquery in
// an INSERT's WHERE is insert-select, predicate and subquery at once).
type uses uint32

const (
	fExpression uses = 1 << iota
	fAggregate
	fWholeRow
	fSubquery
	fSetOp
	fColumnAlias
	fReturning
	fPredicate
	fOrdering
	fCopy
	fInsert
	fUpdate
	fCreateAs
	fDDL
	fSideEffect
	fDynamic
	fStatistics
)

var useOf = [...]Use{UseExpression, UseAggregate, UseWholeRow, UseSubquery, UseSetOperation, UseColumnAlias,
	UseReturning, UsePredicate, UseOrdering, UseCopy, UseInsert, UseUpdate, UseCreateAs, UseDDL, UseSideEffect,
	UseDynamicSQL, UseStatistics}

// out marks an output position: the value is computed into a column,
// unless it only steers rows there.
func (f uses) out() uses {
	if f&(fPredicate|fOrdering) != 0 {
		return f
	}
	return f | fExpression
}

// pending is a reference seen during the walk, resolved against the
// statement's scope once all its RangeVars are known.
type pending struct {
	fields []*pg_query.Node // a ColumnRef's fields, or one String (USING, SEARCH lists)
	f      uses
	top    bool // a plain top-level output column
	expand bool // a target-list entry: * and t.* expand to columns, not a row value
	all    bool // every sensitive column of the in-scope tables
}

type walker struct {
	p       *Policy
	found   map[Finding]bool
	direct  bool
	literal bool // the result depends on a constant's value

	// Per statement.
	scope []bool           // p.tables in scope
	rels  map[string][]int // relation names and aliases → p.tables (-1: every in-scope table)
	ddl   bool             // a sensitive RangeVar here is a ddl finding
	refs  []pending
}

// Aggregates known by name (a call is also one when it has DISTINCT,
// ORDER BY, FILTER, WITHIN GROUP, * or OVER).
var aggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "string_agg": true, "array_agg": true,
	"json_agg": true, "jsonb_agg": true, "json_agg_strict": true, "jsonb_agg_strict": true,
	"json_object_agg": true, "jsonb_object_agg": true, "json_object_agg_strict": true,
	"jsonb_object_agg_strict": true, "json_object_agg_unique": true, "jsonb_object_agg_unique": true,
	"xmlagg": true, "bool_and": true, "bool_or": true, "every": true, "bit_and": true, "bit_or": true,
	"bit_xor": true, "mode": true, "percentile_cont": true, "percentile_disc": true, "range_agg": true,
	"range_intersect_agg": true, "any_value": true, "stddev": true, "stddev_pop": true, "stddev_samp": true,
	"variance": true, "var_pop": true, "var_samp": true, "corr": true, "covar_pop": true, "covar_samp": true,
	"regr_avgx": true, "regr_avgy": true, "regr_count": true, "regr_intercept": true, "regr_r2": true,
	"regr_slope": true, "regr_sxx": true, "regr_sxy": true, "regr_syy": true,
}

// Functions whose arguments outlive the statement (a setting, a
// notification, a large object, a sequence, a WAL message, a lock another
// session can probe): masking the output does not cover them.
var sideEffects = map[string]bool{
	"set_config": true, "pg_notify": true, "lo_from_bytea": true, "lo_put": true, "lowrite": true,
	"lo_import": true, "lo_export": true, "setval": true, "pg_logical_emit_message": true,
	"pg_file_write": true,
}

func (w *walker) statement(n *pg_query.Node) {
	w.scope = make([]bool, len(w.p.tables))
	w.rels = map[string][]int{}
	w.refs = w.refs[:0]
	w.ddl = false
	switch n.GetNode().(type) {
	case *pg_query.Node_SelectStmt, *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt,
		*pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt, *pg_query.Node_CopyStmt,
		*pg_query.Node_ExplainStmt, *pg_query.Node_PrepareStmt, *pg_query.Node_DeclareCursorStmt,
		*pg_query.Node_CreateTableAsStmt, *pg_query.Node_ViewStmt, *pg_query.Node_DoStmt,
		*pg_query.Node_CreateFunctionStmt:
		w.stmt(n, 0, true)
	case *pg_query.Node_TransactionStmt, *pg_query.Node_VariableSetStmt, *pg_query.Node_VariableShowStmt,
		*pg_query.Node_LockStmt, *pg_query.Node_TruncateStmt, *pg_query.Node_VacuumStmt,
		*pg_query.Node_DropStmt, *pg_query.Node_DiscardStmt, *pg_query.Node_ListenStmt,
		*pg_query.Node_NotifyStmt, *pg_query.Node_UnlistenStmt, *pg_query.Node_DeallocateStmt,
		*pg_query.Node_ExecuteStmt, *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt,
		*pg_query.Node_CheckPointStmt, *pg_query.Node_ReindexStmt, *pg_query.Node_ClusterStmt,
		*pg_query.Node_ConstraintsSetStmt:
		// Nothing here reads a column's values back.
		w.node(n, 0)
	default:
		// Other utility statements (ALTER, RENAME, GRANT, CREATE RULE,
		// POLICY, PUBLICATION, INDEX...) can expose or move a sensitive
		// table or column for later statements.
		w.ddl = true
		w.node(n, fDDL)
	}
	w.resolve()
}

// stmt walks a statement; top: its output goes to the client with the
// origins PostgreSQL reports.
func (w *walker) stmt(n *pg_query.Node, f uses, top bool) {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		w.selectStmt(x.SelectStmt, f, top, false)
	case *pg_query.Node_InsertStmt:
		w.insert(x.InsertStmt, f, top)
	case *pg_query.Node_UpdateStmt:
		w.update(x.UpdateStmt, f, top)
	case *pg_query.Node_DeleteStmt:
		w.delete(x.DeleteStmt, f, top)
	case *pg_query.Node_MergeStmt:
		w.merge(x.MergeStmt, f, top)
	case *pg_query.Node_CopyStmt:
		w.copy(x.CopyStmt, f, top)
	case *pg_query.Node_ExplainStmt:
		// EXPLAIN returns a plan, not the values; ANALYZE runs the query,
		// whose other uses count as usual.
		w.stmt(x.ExplainStmt.Query, f, top)
	case *pg_query.Node_PrepareStmt:
		w.stmt(x.PrepareStmt.Query, f, top)
	case *pg_query.Node_DeclareCursorStmt:
		w.stmt(x.DeclareCursorStmt.Query, f, top)
	case *pg_query.Node_CreateTableAsStmt:
		w.rangeVar(x.CreateTableAsStmt.GetInto().GetRel())
		w.stmt(x.CreateTableAsStmt.Query, f|fCreateAs, false)
	case *pg_query.Node_ViewStmt:
		w.stmt(x.ViewStmt.Query, f|fCreateAs, false)
	case *pg_query.Node_DoStmt:
		for _, a := range x.DoStmt.Args {
			if d := a.GetDefElem(); d != nil && d.Defname == "as" {
				w.dynamicText(d.Arg.GetString_().GetSval())
			}
		}
	case *pg_query.Node_CreateFunctionStmt:
		cf := x.CreateFunctionStmt
		for _, o := range cf.Options {
			if d := o.GetDefElem(); d != nil && d.Defname == "as" {
				for _, s := range d.Arg.GetList().GetItems() {
					w.dynamicText(s.GetString_().GetSval())
				}
				w.dynamicText(d.Arg.GetString_().GetSval())
			}
		}
		for _, p := range cf.Parameters {
			w.node(p, f|fDDL)
		}
		w.node(cf.SqlBody, f|fDDL)
	default:
		w.node(n, f)
	}
}

func (w *walker) node(n *pg_query.Node, f uses) {
	if n == nil || n.Node == nil {
		return
	}
	w.visit(n.ProtoReflect(), f)
}

// visit dispatches on the message's type; what it does not know it walks
// field by field, so no node type is skipped.
func (w *walker) visit(m protoreflect.Message, f uses) {
	switch x := m.Interface().(type) {
	case *pg_query.ColumnRef:
		w.refs = append(w.refs, pending{fields: x.Fields, f: f})
	case *pg_query.RangeVar:
		w.rangeVar(x)
	case *pg_query.SelectStmt:
		w.selectStmt(x, f, false, false)
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt,
		*pg_query.CopyStmt, *pg_query.ExplainStmt, *pg_query.CreateTableAsStmt, *pg_query.ViewStmt,
		*pg_query.DoStmt, *pg_query.CreateFunctionStmt, *pg_query.PrepareStmt, *pg_query.DeclareCursorStmt:
		w.stmt(nodeOf(x), f, false)
	case *pg_query.RangeSubselect:
		if x.Alias != nil && len(x.Alias.Colnames) > 0 {
			w.refs = append(w.refs, pending{all: true, f: f | fColumnAlias})
		}
		w.node(x.Subquery, f|fSubquery)
	case *pg_query.RangeFunction:
		if x.Alias != nil && len(x.Alias.Colnames) > 0 {
			w.refs = append(w.refs, pending{all: true, f: f | fColumnAlias})
		}
		for _, fn := range x.Functions {
			w.node(fn, f.out())
		}
	case *pg_query.CommonTableExpr:
		if len(x.Aliascolnames) > 0 {
			w.refs = append(w.refs, pending{all: true, f: f | fColumnAlias})
		}
		for _, s := range x.GetSearchClause().GetSearchColList() {
			w.refs = append(w.refs, pending{fields: []*pg_query.Node{s}, f: f | fOrdering})
		}
		for _, s := range x.GetCycleClause().GetCycleColList() {
			w.refs = append(w.refs, pending{fields: []*pg_query.Node{s}, f: f | fPredicate})
		}
		w.stmt(x.Ctequery, f|fSubquery, false)
	case *pg_query.JoinExpr:
		w.node(x.Larg, f)
		w.node(x.Rarg, f)
		for _, s := range x.UsingClause {
			w.refs = append(w.refs, pending{fields: []*pg_query.Node{s}, f: f | fPredicate})
		}
		if x.IsNatural {
			// NATURAL compares every column of the same name, unnamed.
			w.refs = append(w.refs, pending{all: true, f: f | fPredicate})
		}
		w.node(x.Quals, f|fPredicate)
		if x.Alias != nil {
			w.rels[x.Alias.Aliasname] = append(w.rels[x.Alias.Aliasname], -1)
			if len(x.Alias.Colnames) > 0 {
				w.refs = append(w.refs, pending{all: true, f: f | fColumnAlias})
			}
		}
	case *pg_query.SubLink:
		w.node(x.Testexpr, f)
		if s := x.Subselect.GetSelectStmt(); s != nil {
			w.selectStmt(s, f|fSubquery, false, x.SubLinkType == pg_query.SubLinkType_EXISTS_SUBLINK)
		} else {
			w.node(x.Subselect, f|fSubquery)
		}
	case *pg_query.FuncCall:
		w.funcCall(x, f)
	case *pg_query.WindowDef:
		w.window(x, f)
	default:
		w.children(m, f)
	}
}

func nodeOf(m interface{}) *pg_query.Node {
	switch x := m.(type) {
	case *pg_query.InsertStmt:
		return &pg_query.Node{Node: &pg_query.Node_InsertStmt{InsertStmt: x}}
	case *pg_query.UpdateStmt:
		return &pg_query.Node{Node: &pg_query.Node_UpdateStmt{UpdateStmt: x}}
	case *pg_query.DeleteStmt:
		return &pg_query.Node{Node: &pg_query.Node_DeleteStmt{DeleteStmt: x}}
	case *pg_query.MergeStmt:
		return &pg_query.Node{Node: &pg_query.Node_MergeStmt{MergeStmt: x}}
	case *pg_query.CopyStmt:
		return &pg_query.Node{Node: &pg_query.Node_CopyStmt{CopyStmt: x}}
	case *pg_query.ExplainStmt:
		return &pg_query.Node{Node: &pg_query.Node_ExplainStmt{ExplainStmt: x}}
	case *pg_query.CreateTableAsStmt:
		return &pg_query.Node{Node: &pg_query.Node_CreateTableAsStmt{CreateTableAsStmt: x}}
	case *pg_query.ViewStmt:
		return &pg_query.Node{Node: &pg_query.Node_ViewStmt{ViewStmt: x}}
	case *pg_query.DoStmt:
		return &pg_query.Node{Node: &pg_query.Node_DoStmt{DoStmt: x}}
	case *pg_query.CreateFunctionStmt:
		return &pg_query.Node{Node: &pg_query.Node_CreateFunctionStmt{CreateFunctionStmt: x}}
	case *pg_query.PrepareStmt:
		return &pg_query.Node{Node: &pg_query.Node_PrepareStmt{PrepareStmt: x}}
	case *pg_query.DeclareCursorStmt:
		return &pg_query.Node{Node: &pg_query.Node_DeclareCursorStmt{DeclareCursorStmt: x}}
	}
	return nil
}

func (w *walker) children(m protoreflect.Message, f uses) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.visit(l.Get(i).Message(), f)
			}
		} else {
			w.visit(v.Message(), f)
		}
		return true
	})
}

func (w *walker) rangeVar(rv *pg_query.RangeVar) {
	if rv == nil {
		return
	}
	if statsRelations[rv.Relname] {
		w.all(fStatistics)
	}
	for i, t := range w.p.tables {
		if rv.Relname != t.name || (rv.Schemaname != "" && rv.Schemaname != t.schema) {
			continue
		}
		w.scope[i] = true
		w.rels[rv.Relname] = append(w.rels[rv.Relname], i)
		if rv.Alias != nil {
			w.rels[rv.Alias.Aliasname] = append(w.rels[rv.Alias.Aliasname], i)
			if len(rv.Alias.Colnames) > 0 {
				w.addAll(t.cols, fColumnAlias)
			}
		}
		if w.ddl {
			w.addAll(t.cols, fDDL)
		}
	}
}

func (w *walker) selectStmt(s *pg_query.SelectStmt, f uses, top, exists bool) {
	if s == nil {
		return
	}
	if s.IntoClause != nil {
		f |= fCreateAs
		top = false
		w.rangeVar(s.IntoClause.Rel)
	}
	if !top && f == 0 {
		f = fSubquery
	}
	w.with(s.WithClause, f)
	if s.Op != pg_query.SetOperation_SETOP_NONE {
		// PostgreSQL reports no origin for a set operation's columns.
		w.selectStmt(s.Larg, f|fSetOp, false, false)
		w.selectStmt(s.Rarg, f|fSetOp, false, false)
		w.orderItems(s.SortClause, nil, f|fOrdering)
		w.node(s.LimitOffset, f|fPredicate)
		w.node(s.LimitCount, f|fPredicate)
		return
	}
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		if rt == nil {
			w.node(t, f.out())
			continue
		}
		if c := rt.Val.GetColumnRef(); c != nil {
			// EXISTS ignores its target list.
			if !exists {
				w.refs = append(w.refs, pending{fields: c.Fields, f: f, top: top, expand: true})
			}
			continue
		}
		w.node(rt.Val, f.out())
	}
	for _, n := range s.FromClause {
		w.node(n, f)
	}
	w.node(s.WhereClause, f|fPredicate)
	w.node(s.HavingClause, f|fPredicate)
	w.orderItems(s.GroupClause, s.TargetList, f|fOrdering)
	w.orderItems(s.DistinctClause, s.TargetList, f|fOrdering)
	w.orderItems(s.SortClause, s.TargetList, f|fOrdering)
	for _, n := range s.WindowClause {
		w.node(n, f|fOrdering)
	}
	for _, n := range s.ValuesLists {
		w.node(n, f.out())
	}
	w.node(s.LimitOffset, f|fPredicate)
	w.node(s.LimitCount, f|fPredicate)
	for _, n := range s.LockingClause {
		w.node(n, f)
	}
}

// orderItems walks ORDER BY, GROUP BY and DISTINCT ON items, which may
// also name an output column by position or by its alias.
func (w *walker) orderItems(items, targets []*pg_query.Node, f uses) {
	for _, it := range items {
		n := it
		if sb := it.GetSortBy(); sb != nil {
			n = sb.Node
		}
		if c := n.GetAConst(); c != nil {
			w.literal = true
			if iv := c.GetIval(); iv != nil {
				w.ordinal(int(iv.Ival), targets, f)
			}
		}
		if c := n.GetColumnRef(); c != nil && len(c.Fields) == 1 {
			if name := c.Fields[0].GetString_().GetSval(); name != "" {
				for _, t := range targets {
					if rt := t.GetResTarget(); rt != nil && rt.Name == name {
						if v := rt.Val.GetColumnRef(); v != nil {
							w.refs = append(w.refs, pending{fields: v.Fields, f: f, expand: true})
						}
					}
				}
			}
		}
		w.node(it, f)
	}
}

// ordinal flags the k-th output column, or every column a * before it may
// expand to.
func (w *walker) ordinal(k int, targets []*pg_query.Node, f uses) {
	for i, t := range targets {
		if i >= k {
			return
		}
		v := t.GetResTarget().GetVal().GetColumnRef()
		if v == nil {
			continue
		}
		star := v.Fields[len(v.Fields)-1].GetAStar() != nil
		if star || i == k-1 {
			w.refs = append(w.refs, pending{fields: v.Fields, f: f, expand: true})
		}
	}
}

func (w *walker) with(wc *pg_query.WithClause, f uses) {
	for _, c := range wc.GetCtes() {
		w.node(c, f)
	}
}

// returning: a top-level RETURNING reports origins like a SELECT.
func (w *walker) returning(list []*pg_query.Node, f uses, top bool) {
	if !top {
		f |= fReturning
	}
	for _, t := range list {
		rt := t.GetResTarget()
		if c := rt.GetVal().GetColumnRef(); c != nil {
			w.refs = append(w.refs, pending{fields: c.Fields, f: f, top: top, expand: true})
			continue
		}
		w.node(t, f.out())
	}
}

func (w *walker) insert(x *pg_query.InsertStmt, f uses, top bool) {
	g := f | fInsert
	w.with(x.WithClause, g)
	w.rangeVar(x.Relation)
	for _, c := range x.Cols {
		w.node(c, g)
	}
	w.stmt(x.SelectStmt, g, false)
	if oc := x.OnConflictClause; oc != nil {
		w.children(oc.GetInfer().ProtoReflect(), g|fPredicate)
		w.node(oc.WhereClause, g|fPredicate)
		for _, t := range oc.TargetList {
			w.node(t, f|fUpdate)
		}
	}
	w.returning(x.ReturningList, f, top)
}

func (w *walker) update(x *pg_query.UpdateStmt, f uses, top bool) {
	g := f | fUpdate
	w.with(x.WithClause, g)
	w.rangeVar(x.Relation)
	for _, t := range x.TargetList {
		w.node(t, g)
	}
	for _, n := range x.FromClause {
		w.node(n, f)
	}
	w.node(x.WhereClause, f|fPredicate)
	w.returning(x.ReturningList, f, top)
}

func (w *walker) delete(x *pg_query.DeleteStmt, f uses, top bool) {
	w.with(x.WithClause, f)
	w.rangeVar(x.Relation)
	for _, n := range x.UsingClause {
		w.node(n, f)
	}
	w.node(x.WhereClause, f|fPredicate)
	w.returning(x.ReturningList, f, top)
}

func (w *walker) merge(x *pg_query.MergeStmt, f uses, top bool) {
	g := f | fUpdate
	w.with(x.WithClause, g)
	w.rangeVar(x.Relation)
	w.node(x.SourceRelation, f)
	w.node(x.JoinCondition, f|fPredicate)
	for _, n := range x.MergeWhenClauses {
		mw := n.GetMergeWhenClause()
		if mw == nil {
			w.node(n, g)
			continue
		}
		w.node(mw.Condition, f|fPredicate)
		for _, t := range mw.TargetList {
			w.node(t, g)
		}
		for _, v := range mw.Values {
			w.node(v, g)
		}
	}
	w.returning(x.ReturningList, f, top)
}

func (w *walker) copy(x *pg_query.CopyStmt, f uses, top bool) {
	if rv := x.Relation; rv != nil {
		w.rangeVar(rv)
		if !x.IsFrom {
			// COPY table TO sends no RowDescription: nothing to mask by.
			for _, t := range w.p.tables {
				if rv.Relname != t.name || (rv.Schemaname != "" && rv.Schemaname != t.schema) {
					continue
				}
				if len(x.Attlist) == 0 {
					w.addAll(t.cols, f|fCopy)
				}
				for _, a := range x.Attlist {
					for _, c := range t.cols {
						if a.GetString_().GetSval() == c.Column {
							w.add(c, f|fCopy)
						}
					}
				}
			}
		}
	}
	if x.Query != nil {
		if x.Filename != "" || x.IsProgram {
			w.stmt(x.Query, f|fCopy, false)
		} else {
			w.stmt(x.Query, f, top)
		}
	}
	w.node(x.WhereClause, f|fPredicate)
}

func (w *walker) funcCall(x *pg_query.FuncCall, f uses) {
	name := ""
	if n := len(x.Funcname); n > 0 {
		name = asciiLower(x.Funcname[n-1].GetString_().GetSval())
	}
	if opaqueFuncs[name] {
		w.all(fDynamic)
	}
	g := f
	agg := aggregates[name] || x.AggStar || x.AggDistinct || x.AggWithinGroup || len(x.AggOrder) > 0 ||
		x.AggFilter != nil || x.Over != nil
	if agg && f&(fPredicate|fOrdering) == 0 {
		g = g&^fExpression | fAggregate
	}
	if sideEffects[name] || strings.HasPrefix(name, "pg_advisory") || strings.HasPrefix(name, "pg_try_advisory") {
		g |= fSideEffect
	}
	for _, a := range x.Args {
		w.node(a, g)
	}
	for _, o := range x.AggOrder {
		w.node(o, g|fOrdering)
	}
	w.node(x.AggFilter, g|fPredicate)
	if x.Over != nil {
		w.window(x.Over, g)
	}
}

func (w *walker) window(x *pg_query.WindowDef, f uses) {
	for _, n := range x.PartitionClause {
		w.node(n, f|fOrdering)
	}
	for _, n := range x.OrderClause {
		w.node(n, f|fOrdering)
	}
	w.node(x.StartOffset, f|fPredicate)
	w.node(x.EndOffset, f|fPredicate)
}

// dynamicText is SQL as text (a DO block, a function body): any sensitive
// name in it, in any case, is a finding.
func (w *walker) dynamicText(s string) {
	if s == "" {
		return
	}
	w.literal = true
	for _, n := range w.p.mentions(s, false) {
		cols, ok := w.p.needleCols[n]
		if !ok {
			w.all(fDynamic)
			continue
		}
		w.addAll(cols, fDynamic)
	}
}

// all flags every sensitive column of the policy.
func (w *walker) all(f uses) {
	for _, t := range w.p.tables {
		w.addAll(t.cols, f)
	}
}

func (w *walker) addAll(cols []Column, f uses) {
	for _, c := range cols {
		w.add(c, f)
	}
}

func (w *walker) add(c Column, f uses) {
	if f == 0 {
		f = fExpression
	}
	for i, u := range useOf {
		if f&(1<<i) != 0 {
			w.found[Finding{Column: c, Use: u}] = true
		}
	}
}

// relTables are the sensitive tables a relation name or alias may stand for.
func (w *walker) relTables(name string) []int {
	var out []int
	for _, i := range w.rels[name] {
		if i >= 0 {
			out = append(out, i)
			continue
		}
		for j, in := range w.scope {
			if in {
				out = append(out, j)
			}
		}
	}
	return out
}

// resolve turns the statement's references into findings now that its
// scope is known.
func (w *walker) resolve() {
	inScope := false
	for _, in := range w.scope {
		inScope = inScope || in
	}
	if !inScope {
		return
	}
	for _, r := range w.refs {
		if r.all {
			for i, t := range w.p.tables {
				if w.scope[i] {
					w.addAll(t.cols, r.f)
				}
			}
			continue
		}
		n := len(r.fields)
		if n == 0 {
			continue
		}
		if r.fields[n-1].GetAStar() != nil {
			var tabs []int
			if n == 1 {
				for i, in := range w.scope {
					if in {
						tabs = append(tabs, i)
					}
				}
			} else {
				tabs = w.relTables(r.fields[n-2].GetString_().GetSval())
			}
			if len(tabs) == 0 {
				continue
			}
			if r.top && r.expand {
				w.direct = true
				continue
			}
			f := r.f
			if !r.expand {
				f |= fWholeRow
			}
			for _, i := range tabs {
				w.addAll(w.p.tables[i].cols, f)
			}
			continue
		}
		name := r.fields[n-1].GetString_().GetSval()
		matched := false
		for _, c := range w.p.byName[name] {
			if !w.scope[c.t] {
				continue
			}
			matched = true
			if r.top {
				w.direct = true
			} else {
				w.add(c.Column, r.f)
			}
		}
		if matched {
			continue
		}
		// Not a sensitive column: a relation's name stands for its whole row.
		for _, i := range w.relTables(name) {
			w.addAll(w.p.tables[i].cols, r.f|fWholeRow)
		}
	}
}
