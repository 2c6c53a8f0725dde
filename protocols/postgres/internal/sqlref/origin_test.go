//go:build unix

package sqlref

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestRowDescriptionOrigins checks, on a real PostgreSQL 15, the facts
// about RowDescription the package doc states and the analysis relies on:
// which output columns carry their origin table OID and attribute number.
func TestRowDescriptionOrigins(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	oids := strings.Split(pg.Exec(t, `CREATE TABLE api_keys (id int primary key, name text, secret text);
INSERT INTO api_keys VALUES (1, 'a', 'sk_1'), (2, 'b', 'sk_2');
CREATE TABLE users (id int, name text); INSERT INTO users VALUES (1, 'u');
CREATE VIEW v AS SELECT id, secret FROM api_keys;
SELECT 'api_keys'::regclass::oid || ' ' || 'v'::regclass::oid`), " ")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// want: each output column as table/attnum, "t" for api_keys, "v" for
	// the view, "0" for no origin.
	for _, tc := range []struct{ sql, want string }{
		{`SELECT secret AS s FROM api_keys`, "t/3"},
		{`SELECT x.s FROM (SELECT secret AS s FROM api_keys) x`, "t/3"},
		{`WITH c AS (SELECT secret FROM api_keys) SELECT secret FROM c`, "t/3"},
		{`WITH c AS MATERIALIZED (SELECT secret AS z FROM api_keys) SELECT z FROM c`, "t/3"},
		{`SELECT s FROM api_keys, LATERAL (SELECT secret AS s) l`, "t/3"},
		{`SELECT c FROM api_keys AS k(a, b, c)`, "t/3"},
		{`SELECT secret FROM v`, "v/2"},
		{`SELECT name FROM users UNION ALL SELECT secret FROM api_keys`, "0/0"},
		{`SELECT secret FROM api_keys UNION SELECT name FROM users`, "0/0"},
		{`SELECT s FROM (SELECT name AS s FROM users UNION ALL SELECT secret FROM api_keys) x`, "0/0"},
		{`SELECT upper(secret) FROM api_keys`, "0/0"},
		{`SELECT (SELECT secret FROM api_keys LIMIT 1)`, "0/0"},
		{`VALUES ((SELECT secret FROM api_keys LIMIT 1))`, "0/0"},
		{`SELECT k FROM api_keys k`, "t/0"},
		{`UPDATE api_keys SET name = name WHERE id = 1 RETURNING secret`, "t/3"},
		{`INSERT INTO api_keys VALUES (3, 'c', 'sk_3') RETURNING secret`, "t/3"},
		{`DELETE FROM api_keys WHERE id = 3 RETURNING secret`, "t/3"},
		{`WITH u AS (UPDATE api_keys SET name = name WHERE id = 1 RETURNING secret) SELECT secret FROM u`, "t/3"},
		{`BEGIN; DECLARE cur CURSOR FOR SELECT secret AS s FROM api_keys; FETCH 1 FROM cur`, "t/3"},
		{`DECLARE cur2 CURSOR FOR SELECT secret FROM api_keys UNION ALL SELECT 'z'; FETCH 1 FROM cur2; COMMIT`, "0/0"},
		{`PREPARE p AS SELECT secret FROM api_keys WHERE id = $1; EXECUTE p(1)`, "t/3"},
	} {
		rs, err := c.Exec(ctx, tc.sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		var got []string
		for _, r := range rs {
			for _, f := range r.FieldDescriptions {
				tab := fmt.Sprint(f.TableOID)
				switch tab {
				case oids[0]:
					tab = "t"
				case oids[1]:
					tab = "v"
				}
				got = append(got, fmt.Sprintf("%s/%d", tab, f.TableAttributeNumber))
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: origins %v, want %s", tc.sql, got, tc.want)
		}
	}
}
