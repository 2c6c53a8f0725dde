package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/protocols/postgres/internal/sqlref"
)

// Sensitive columns are found by what the server says, not by name
//
// A target's [[targets.sensitive]] globs are resolved against its catalog
// into (table OID, attribute number) pairs. PostgreSQL's RowDescription
// names, for each output column that is a plain column reference, the
// table and attribute it comes from (through aliases, subqueries and
// CTEs; a view's columns name the view), so the gateway masks those
// columns whatever the query calls them. Uses the RowDescription cannot
// show (an expression, a predicate, a whole-row reference) are found in
// the statement by PostgreSQL's own parser (internal/sqlref).
//
// The catalog is read with the target's credential on a connection of the
// gateway's own, once per target and database, again after catalogTTL,
// and again after a statement the gateway relayed changed the schema
// (a CREATE, ALTER, DROP or COMMENT tag). A catalog that cannot be read
// makes statements fail closed.

// catalogTTL is how long a resolved catalog is trusted without DDL seen.
const catalogTTL = time.Minute

// sensitiveRule is one [[targets.sensitive]] entry, split into globs.
type sensitiveRule struct {
	schema, table, column string
	mask                  bool // derived = "mask"
}

func sensitiveRules(sensitive []Sensitive) []sensitiveRule {
	var out []sensitiveRule
	for _, s := range sensitive {
		for _, c := range s.Columns {
			parts := strings.SplitN(c, ".", 3)
			if len(parts) != 3 {
				continue // config validation refuses these
			}
			out = append(out, sensitiveRule{schema: parts[0], table: parts[1], column: parts[2], mask: s.Derived == "mask"})
		}
	}
	return out
}

// srcCol is a column of a table, as RowDescription names it.
type srcCol struct {
	table uint32
	attr  int16
}

// sensitiveCol is one resolved sensitive column.
type sensitiveCol struct {
	schema, table, column string
	mask                  bool
}

func (c *sensitiveCol) String() string { return c.schema + "." + c.table + "." + c.column }

// catalog is one target database's sensitive columns.
type catalog struct {
	cols   map[srcCol]*sensitiveCol
	list   []*sensitiveCol
	loaded time.Time
	// tables holds a relation with a sensitive column, for whole-row
	// columns (the server reports attribute number 0 for `SELECT k FROM
	// api_keys k`), with the first such column.
	tables map[uint32]*sensitiveCol
	// policy finds uses the RowDescription cannot show; byRef maps its
	// findings back.
	policy *sqlref.Policy
	byRef  map[sqlref.Column]*sensitiveCol
}

// sensitive returns the sensitive column a result column comes from.
func (c *catalog) sensitive(table uint32, attr int16) *sensitiveCol {
	if c == nil || table == 0 {
		return nil
	}
	if attr == 0 {
		return c.tables[table]
	}
	return c.cols[srcCol{table, attr}]
}

// catalogs caches catalogs per target and database.
type catalogs struct {
	mu sync.Mutex
	m  map[string]*catalogEntry
}

type catalogEntry struct {
	mu    sync.Mutex // one load at a time
	cat   *catalog
	stale bool
}

// entry is the cache entry of db on t, made on first use; a session
// looks it up once and keeps it.
func (cs *catalogs) entry(t *target, db string) *catalogEntry {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*catalogEntry{}
	}
	key := t.name + "\x00" + db
	e := cs.m[key]
	if e == nil {
		e = &catalogEntry{}
		cs.m[key] = e
	}
	return e
}

// get returns the catalog of db on t, reading it when missing or stale.
func (e *catalogEntry) get(ctx context.Context, t *target, db string) (*catalog, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cat != nil && !e.stale && time.Since(e.cat.loaded) < catalogTTL {
		return e.cat, nil
	}
	cat, err := loadCatalog(ctx, t, db)
	if err != nil {
		return nil, err
	}
	e.cat, e.stale = cat, false
	return cat, nil
}

// invalidate marks the catalog stale: the schema changed.
func (e *catalogEntry) invalidate() {
	e.mu.Lock()
	e.stale = true
	e.mu.Unlock()
}

// catalogQuery lists every column of every relation a query can read
// from, outside the system schemas.
const catalogQuery = `SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`

func loadCatalog(ctx context.Context, t *target, db string) (*catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := t.dial(ctx, db, "tollgate catalog")
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %s", t.name, scrub(err.Error(), t.password))
	}
	defer pc.Close(context.Background())
	res := pc.ExecParams(ctx, catalogQuery, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", t.name, res.Err)
	}
	cat := &catalog{cols: map[srcCol]*sensitiveCol{}, tables: map[uint32]*sensitiveCol{}, byRef: map[sqlref.Column]*sensitiveCol{}, loaded: time.Now()}
	for _, row := range res.Rows {
		oid, err1 := strconv.ParseUint(string(row[0]), 10, 32)
		attr, err2 := strconv.ParseInt(string(row[1]), 10, 16)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("catalog of %s: unexpected row %q", t.name, row)
		}
		schema, table, column := string(row[2]), string(row[3]), string(row[4])
		for _, r := range t.sensitive {
			if gate.GlobMatch(r.schema, schema) && gate.GlobMatch(r.table, table) && gate.GlobMatch(r.column, column) {
				c := &sensitiveCol{schema: schema, table: table, column: column, mask: r.mask}
				if prev := cat.cols[srcCol{uint32(oid), int16(attr)}]; prev != nil {
					// Named by two entries: refuse wins over mask.
					prev.mask = prev.mask && r.mask
					continue
				}
				cat.cols[srcCol{uint32(oid), int16(attr)}] = c
				cat.list = append(cat.list, c)
				if cat.tables[uint32(oid)] == nil {
					cat.tables[uint32(oid)] = c
				}
				cat.byRef[sqlref.Column{Schema: schema, Table: table, Column: column}] = c
			}
		}
	}
	refs := make([]sqlref.Column, 0, len(cat.byRef))
	for r := range cat.byRef {
		refs = append(refs, r)
	}
	cat.policy = sqlref.NewPolicy(refs)
	return cat, nil
}

// schemaChanging reports whether a command tag may have changed which
// columns exist or what they are called.
func schemaChanging(tag string) bool {
	for _, p := range [...]string{"CREATE ", "ALTER ", "DROP ", "COMMENT", "IMPORT FOREIGN SCHEMA"} {
		if strings.HasPrefix(tag, p) {
			return true
		}
	}
	return false
}

// dial opens a plain connection of the gateway's own to db on t.
func (t *target) dial(ctx context.Context, db, app string) (*pgconn.PgConn, error) {
	cfg, err := t.config(db)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams = map[string]string{"application_name": app}
	return pgconn.ConnectConfig(ctx, cfg)
}
