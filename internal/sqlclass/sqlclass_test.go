package sqlclass

import (
	"strings"
	"testing"
)

// one is a single-statement case. tables "-" skips the Tables check.
type one struct {
	sql    string
	class  Class
	cmd    string
	where  bool
	tables string
}

var singleCases = []one{
	// Reads.
	{"SELECT 1", Read, "SELECT", false, ""},
	{"select * from users where id = 1", Read, "SELECT", false, ""},
	{"SeLeCt now()", Read, "SELECT", false, ""},
	{"(SELECT 1)", Read, "SELECT", false, ""},
	{"((select 1) union (select 2))", Read, "SELECT", false, ""},
	{"VALUES (1), (2)", Read, "VALUES", false, ""},
	{"TABLE users", Read, "TABLE", false, ""},
	{"SELECT 'DELETE FROM t'", Read, "SELECT", false, ""},
	{"SELECT $$ DELETE FROM t; $$", Read, "SELECT", false, ""},
	{"SELECT $x$ ; DROP TABLE t; $y$ $x$", Read, "SELECT", false, ""},
	{`SELECT "delete" FROM "update"`, Read, "SELECT", false, ""},
	{"SELECT 1 -- ; DELETE FROM t", Read, "SELECT", false, ""},
	{"SELECT 1 /* ; DELETE /* nested ; */ FROM t; */", Read, "SELECT", false, ""},
	{"SELECT E'it\\'s; DROP TABLE t'", Read, "SELECT", false, ""},
	{"SELECT 'it''s; DROP TABLE t'", Read, "SELECT", false, ""},
	{"SELECT count(*) FROM a JOIN b ON a.id = b.id WHERE b.x IN (SELECT x FROM c)", Read, "SELECT", false, ""},
	{"SELECT substring('abc' FROM 1 FOR 2)", Read, "SELECT", false, ""},
	{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r", Read, "SELECT", false, ""},
	{"WITH a AS (SELECT 1), b AS MATERIALIZED (SELECT 2) SELECT * FROM a, b", Read, "SELECT", false, ""},
	{"WITH RECURSIVE t(id, p) AS (SELECT 1, 0) SEARCH DEPTH FIRST BY id, p SET ord SELECT * FROM t", Read, "SELECT", false, ""},
	{"WITH RECURSIVE t(id) AS (SELECT 1) CYCLE id SET is_cycle USING path SELECT * FROM t", Read, "SELECT", false, ""},
	{"SELECT lower(name), coalesce(x, 0) FROM t", Read, "SELECT", false, ""},
	{"SELECT pg_catalog.current_setting('search_path')", Read, "SELECT", false, ""},
	{"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", Read, "DECLARE", false, ""},
	{"FETCH 10 FROM c", Read, "FETCH", false, ""},
	{"MOVE NEXT IN c", Read, "MOVE", false, ""},
	{"CLOSE c", Read, "CLOSE", false, ""},
	{"EXPLAIN SELECT * FROM t", Read, "EXPLAIN", false, ""},
	{"EXPLAIN DELETE FROM t", Read, "EXPLAIN", false, ""},
	{"EXPLAIN (ANALYZE false) DELETE FROM t", Read, "EXPLAIN", false, ""},
	{"EXPLAIN (ANALYZE off, FORMAT JSON) UPDATE t SET a = 1", Read, "EXPLAIN", false, ""},
	{"EXPLAIN ANALYZE SELECT 1", Read, "EXPLAIN", false, ""},
	{"COPY t TO STDOUT", Read, "COPY", false, ""},
	{"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", Read, "COPY", false, ""},
	{"PREPARE q(int) AS SELECT * FROM t WHERE id = $1", Read, "PREPARE", false, ""},
	{"SELECT update FROM t", Read, "SELECT", false, ""},
	{"SELECT 'C:\\path\\file'", Read, "SELECT", false, ""},
	{"SELECT E'a'\n'\\'; DELETE FROM t; --'", Read, "SELECT", false, ""},
	{"SELECT E'a' \r\n\v\f \n\t'\\'; DELETE FROM t; --'", Read, "SELECT", false, ""},
	{"SELECT E'a' -- c\r\n -- d\n\t'\\'; DELETE FROM t; --'", Read, "SELECT", false, ""},
	{"SELECT B'1'\n'0''; DELETE FROM t; --'", Read, "SELECT", false, ""},

	// Writes.
	{"INSERT INTO t VALUES (1)", Write, "INSERT", false, "t"},
	{"insert into Public.Users (a) select 1", Write, "INSERT", false, "public.users"},
	{`INSERT INTO "My Schema"."T""x" VALUES (1)`, Write, "INSERT", false, `My Schema.T"x`},
	{"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2 WHERE t.a > 0", Write, "INSERT", false, "t"},
	{"UPDATE t SET a = 1", Write, "UPDATE", false, "t"},
	{"UPDATE t SET a = 1 WHERE id = 2", Write, "UPDATE", true, "t"},
	{"update only s.t as x set a = 1 where x.id = 2", Write, "UPDATE", true, "s.t"},
	{"UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id)", Write, "UPDATE", false, "t"},
	{"UPDATE t SET a = 'WHERE'", Write, "UPDATE", false, "t"},
	{"UPDATE t SET a = 1 -- WHERE id = 1", Write, "UPDATE", false, "t"},
	{"UPDATE t SET a = 1 /* WHERE id = 1 */", Write, "UPDATE", false, "t"},
	{`UPDATE t SET "where" = 1`, Write, "UPDATE", false, "t"},
	{"UPDATE t SET a = u.a FROM u WHERE u.id = t.id", Write, "UPDATE", true, "t"},
	{"UPDATE t SET a = 1 WHERE CURRENT OF c", Write, "UPDATE", true, "t"},
	{"DELETE FROM t", Write, "DELETE", false, "t"},
	{"DELETE FROM t WHERE true", Write, "DELETE", true, "t"},
	{"delete from t where id in (select id from u)", Write, "DELETE", true, "t"},
	{"DELETE FROM t USING u WHERE t.id = u.id", Write, "DELETE", true, "t"},
	{"DELETE FROM t WHERE CURRENT OF c", Write, "DELETE", true, "t"},
	{"DELETE FROM t USING (SELECT id FROM u WHERE x) s", Write, "DELETE", false, "t"},
	{"/**/DELETE FROM t", Write, "DELETE", false, "t"},
	{"DeLeTe FrOm t", Write, "DELETE", false, "t"},
	{"(DELETE FROM t)", Unknown, "", false, ""},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", Write, "MERGE", false, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE", Write, "MERGE", true, "t"},
	{"merge into t using s on true when matched then update set a = 1", Write, "MERGE", false, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", Write, "MERGE", true, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN DO NOTHING WHEN MATCHED THEN DO NOTHING", Write, "MERGE", true, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x THEN UPDATE SET a = 1 WHEN MATCHED THEN DELETE", Write, "MERGE", false, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE", Write, "MERGE", false, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.old THEN DELETE WHEN NOT MATCHED BY TARGET THEN INSERT DEFAULT VALUES", Write, "MERGE", true, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = CASE WHEN matched THEN 1 END", Write, "MERGE", false, "t"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND CASE WHEN s.a THEN true END THEN /* x */ DELETE", Write, "MERGE", true, "t"},
	{"MERGE INTO t USING s ON t.id = s.id", Write, "MERGE", false, "t"},
	{"COPY t FROM STDIN", Write, "COPY", false, "t"},
	{"COPY t (a, b) FROM STDIN WITH (FORMAT csv)", Write, "COPY", false, "t"},
	{"SELECT * FROM t FOR UPDATE", Write, "SELECT FOR UPDATE", false, ""},
	{"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", Write, "SELECT FOR UPDATE", false, ""},
	{"SELECT * FROM t FOR SHARE", Write, "SELECT FOR SHARE", false, ""},
	{"SELECT * FROM t FOR KEY SHARE OF t", Write, "SELECT FOR SHARE", false, ""},
	{"SELECT nextval('s')", Write, "SELECT", false, ""},
	{"SELECT setval('s', 10)", Write, "SELECT", false, ""},
	{"SELECT pg_advisory_lock(1)", Write, "SELECT", false, ""},
	{"select PG_TRY_ADVISORY_XACT_LOCK(1)", Write, "SELECT", false, ""},
	{"SELECT lo_unlink(123)", Write, "SELECT", false, ""},
	{"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", Write, "SELECT FOR UPDATE", false, ""},

	// Data-modifying CTEs.
	{"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", Write, "DELETE", false, "t"},
	{"WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d WHERE x", Write, "DELETE", true, "t"},
	{"with x as (select 1) delete from t", Write, "DELETE", false, "t"},
	{"WITH x AS (SELECT 1) UPDATE t SET a = 1 FROM x WHERE t.id = x.id", Write, "UPDATE", true, "t"},
	{"WITH a AS (UPDATE t SET x = 1 WHERE id = 1 RETURNING id), b AS (DELETE FROM u RETURNING id) SELECT 1", Write, "UPDATE", false, "t,u"},
	{"WITH a AS (INSERT INTO log VALUES (1) RETURNING *) SELECT * FROM a", Write, "INSERT", false, "log"},
	{"WITH RECURSIVE a AS NOT MATERIALIZED (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *) SELECT 1", Write, "MERGE", false, "t"},
	{"WITH a AS (SELECT 1) SELECT nextval('s')", Write, "SELECT", false, ""},
	{"WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a FOR UPDATE", Write, "DELETE", false, "t"},
	{"SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s", Write, "DELETE", false, "t"},
	{"INSERT INTO t WITH d AS (DELETE FROM u RETURNING *) SELECT * FROM d", Write, "DELETE", false, "t,u"},
	{"SELECT * FROM t WHERE id IN (UPDATE ONLY s.u * AS x SET a = 1 RETURNING id)", Write, "UPDATE", false, "s.u"},
	{"WITH A AS(0)UPDATE WHERE", Unknown, "", false, "-"},
	{"WITH a AS (SELECT 1) CREATE TABLE x ()", Unknown, "WITH", false, ""},
	{"WITH a AS SELECT 1", Unknown, "WITH", false, ""},

	// Wrappers that execute.
	{"EXPLAIN ANALYZE DELETE FROM t", Write, "DELETE", false, "t"},
	{"EXPLAIN ANALYSE VERBOSE UPDATE t SET a = 1 WHERE id = 1", Write, "UPDATE", true, "t"},
	{"EXPLAIN (ANALYZE) DELETE FROM t", Write, "DELETE", false, "t"},
	{"EXPLAIN (FORMAT JSON, ANALYZE true) INSERT INTO t VALUES (1)", Write, "INSERT", false, "t"},
	{"EXPLAIN (ANALYZE 'on') DELETE FROM t", Write, "DELETE", false, "t"},
	{"EXPLAIN ANALYZE SELECT pg_terminate_backend(1)", Admin, "SELECT", false, ""},
	{"EXPLAIN ANALYZE EXECUTE q", Unknown, "EXPLAIN", false, ""},
	{"PREPARE x AS DELETE FROM t", Write, "DELETE", false, "t"},
	{"PREPARE x (int) AS UPDATE t SET a = $1 WHERE id = $1", Write, "UPDATE", true, "t"},
	{"COPY (DELETE FROM t RETURNING *) TO STDOUT", Write, "DELETE", false, "t"},

	// SELECT INTO creates a table.
	{"SELECT * INTO newtable FROM t", DDL, "SELECT INTO", false, "newtable"},
	{"SELECT a, b INTO TEMP TABLE s.n FROM t", DDL, "SELECT INTO", false, "s.n"},
	{"(SELECT 1 INTO x)", DDL, "SELECT INTO", false, "x"},
	{"SELECT 1into x", DDL, "SELECT INTO", false, "x"},

	// DDL.
	{"CREATE TABLE t (id int)", DDL, "CREATE TABLE", false, "t"},
	{"create table if not exists S.T (update int, delete int)", DDL, "CREATE TABLE", false, "s.t"},
	{"CREATE TEMP TABLE t AS SELECT 1", DDL, "CREATE TABLE", false, "t"},
	{"CREATE UNLOGGED TABLE t (a int)", DDL, "CREATE TABLE", false, "t"},
	{"CREATE OR REPLACE VIEW v AS SELECT 1", DDL, "CREATE VIEW", false, "v"},
	{"CREATE MATERIALIZED VIEW mv AS SELECT 1", DDL, "CREATE MATERIALIZED VIEW", false, "mv"},
	{"CREATE UNIQUE INDEX CONCURRENTLY i ON ONLY t (a)", DDL, "CREATE INDEX", false, "t"},
	{"CREATE INDEX ON t USING btree (a)", DDL, "CREATE INDEX", false, "t"},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t; SELECT 1 $$", DDL, "CREATE FUNCTION", false, ""},
	{"CREATE FUNCTION nextval(x int) RETURNS int AS 'select 1' LANGUAGE sql", DDL, "CREATE FUNCTION", false, ""},
	{"CREATE TRIGGER tr AFTER DELETE ON s.t FOR EACH ROW EXECUTE FUNCTION f()", DDL, "CREATE TRIGGER", false, "s.t"},
	{"CREATE SCHEMA app", DDL, "CREATE SCHEMA", false, ""},
	{"CREATE DATABASE d", DDL, "CREATE DATABASE", false, ""},
	{"ALTER TABLE t ADD COLUMN c int", DDL, "ALTER TABLE", false, "t"},
	{"ALTER TABLE IF EXISTS ONLY t DROP COLUMN c", DDL, "ALTER TABLE", false, "t"},
	{"DROP TABLE a, s.b CASCADE", DDL, "DROP TABLE", false, "a,s.b"},
	{"DROP TABLE IF EXISTS t", DDL, "DROP TABLE", false, "t"},
	{"DROP INDEX CONCURRENTLY IF EXISTS i", DDL, "DROP INDEX", false, "i"},
	{"DROP SCHEMA app CASCADE", DDL, "DROP SCHEMA", false, ""},
	{"drop function if exists lo_import(text)", DDL, "DROP FUNCTION", false, ""},
	{"TRUNCATE t", DDL, "TRUNCATE", false, "t"},
	{"TRUNCATE TABLE ONLY a, b RESTART IDENTITY", DDL, "TRUNCATE", false, "a,b"},
	{"COMMENT ON TABLE t IS 'x'", DDL, "COMMENT ON", false, ""},
	{"REINDEX TABLE t", DDL, "REINDEX", false, ""},
	{"CLUSTER t USING i", DDL, "CLUSTER", false, ""},
	{"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", DDL, "REFRESH MATERIALIZED VIEW", false, "mv"},
	{"CREATE TABLE t AS SELECT nextval('s')", DDL, "CREATE TABLE", false, "t"},

	// DCL.
	{"GRANT SELECT ON t TO bob", DCL, "GRANT", false, ""},
	{"REVOKE ALL ON t FROM bob", DCL, "REVOKE", false, ""},
	{"GRANT EXECUTE ON FUNCTION dblink(text) TO bob", DCL, "GRANT", false, ""},
	{"CREATE ROLE r LOGIN", DCL, "CREATE ROLE", false, ""},
	{"create user u with password 'x'", DCL, "CREATE USER", false, ""},
	{"ALTER USER u WITH SUPERUSER", DCL, "ALTER USER", false, ""},
	{"DROP ROLE IF EXISTS r", DCL, "DROP ROLE", false, ""},
	{"CREATE POLICY p ON t FOR UPDATE USING (true)", DCL, "CREATE POLICY", false, "t"},
	{"ALTER POLICY p ON s.t USING (false)", DCL, "ALTER POLICY", false, "s.t"},
	{"DROP POLICY p ON t", DCL, "DROP POLICY", false, "t"},
	{"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", DCL, "ALTER DEFAULT PRIVILEGES", false, ""},
	{"CREATE USER MAPPING FOR bob SERVER s OPTIONS (password 'x')", DCL, "CREATE USER MAPPING", false, ""},
	{"DROP OWNED BY bob", DCL, "DROP OWNED", false, ""},
	{"REASSIGN OWNED BY a TO b", DCL, "REASSIGN OWNED", false, ""},
	{"SET ROLE postgres", DCL, "SET ROLE", false, ""},
	{"SET LOCAL ROLE NONE", DCL, "SET ROLE", false, ""},
	{"SET SESSION AUTHORIZATION postgres", DCL, "SET SESSION AUTHORIZATION", false, ""},
	{"set session session authorization default", DCL, "SET SESSION AUTHORIZATION", false, ""},
	{"SET role = 'postgres'", DCL, "SET ROLE", false, ""},
	{`SET "ROLE" TO 'postgres'`, DCL, "SET", false, ""},
	{`SET "session_authorization" = 'postgres'`, DCL, "SET", false, ""},
	{"RESET ROLE", DCL, "RESET", false, ""},
	{"RESET SESSION AUTHORIZATION", DCL, "RESET", false, ""},
	{"DISCARD ALL", DCL, "DISCARD ALL", false, ""},

	// LOCK is its own class.
	{"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", Lock, "LOCK", false, "t"},
	{"lock only s.t, u in share mode nowait", Lock, "LOCK", false, "s.t,u"},
	{"LOCK t", Lock, "LOCK", false, "t"},

	// Lifting read-only mode is its own class.
	{"SET default_transaction_read_only = off", LiftReadOnly, "SET", false, ""},
	{"SET default_transaction_read_only TO false", LiftReadOnly, "SET", false, ""},
	{"set default_transaction_read_only = 0", LiftReadOnly, "SET", false, ""},
	{"SET SESSION default_transaction_read_only = 'no'", LiftReadOnly, "SET", false, ""},
	{"SET default_transaction_read_only = 'of'", LiftReadOnly, "SET", false, ""},
	{"SET default_transaction_read_only TO DEFAULT", LiftReadOnly, "SET", false, ""},
	{"SET default_transaction_read_only = E'o\\146f'", LiftReadOnly, "SET", false, ""},
	{`SET "Default_Transaction_Read_Only" = off`, LiftReadOnly, "SET", false, ""},
	{"SET /* x */ DEFAULT_TRANSACTION_READ_ONLY /* y */ = -- z\n off", LiftReadOnly, "SET", false, ""},
	{"SET LOCAL transaction_read_only = off", LiftReadOnly, "SET", false, ""},
	{"SET transaction_read_only TO 'f'", LiftReadOnly, "SET", false, ""},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", LiftReadOnly, "SET", false, ""},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", LiftReadOnly, "SET", false, ""},
	{"SET TRANSACTION READ WRITE", LiftReadOnly, "SET", false, ""},
	{"set local transaction isolation level read committed read/**/write", LiftReadOnly, "SET", false, ""},
	{"BEGIN READ WRITE", LiftReadOnly, "BEGIN", false, ""},
	{"BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE", LiftReadOnly, "BEGIN", false, ""},
	{"begin work isolation level read committed, read write, not deferrable", LiftReadOnly, "BEGIN", false, ""},
	{"START TRANSACTION READ WRITE", LiftReadOnly, "START TRANSACTION", false, ""},
	{"START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ WRITE", LiftReadOnly, "START TRANSACTION", false, ""},
	{"SELECT set_config('default_transaction_read_only', 'off', false)", LiftReadOnly, "SELECT", false, ""},
	{"SELECT pg_catalog.set_config('TRANSACTION_READ_ONLY', 'off', true)", LiftReadOnly, "SELECT", false, ""},
	{"SELECT set_config('transaction_read_only', 'on', true)", Session, "SELECT", false, ""},
	{"SELECT set_config('transaction_read_only', $1, true)", LiftReadOnly, "SELECT", false, ""},
	{"RESET default_transaction_read_only", LiftReadOnly, "RESET", false, ""},
	{`RESET "transaction_read_only"`, LiftReadOnly, "RESET", false, ""},
	{"RESET ALL", LiftReadOnly, "RESET ALL", false, ""},
	{"SET default_transaction_read_only = on", Session, "SET", false, ""},
	{"SET default_transaction_read_only TO 'TRUE'", Session, "SET", false, ""},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", Session, "SET", false, ""},
	{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", Session, "SET", false, ""},
	{"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", Session, "SET", false, ""},
	{"BEGIN READ ONLY", Transaction, "BEGIN", false, ""},
	{"START TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", Transaction, "START TRANSACTION", false, ""},

	// Admin.
	{"VACUUM FULL t", Admin, "VACUUM", false, ""},
	{"ANALYZE t", Admin, "ANALYZE", false, ""},
	{"analyse", Admin, "ANALYZE", false, ""},
	{"CHECKPOINT", Admin, "CHECKPOINT", false, ""},
	{"LOAD 'auto_explain'", Admin, "LOAD", false, ""},
	{"ALTER SYSTEM SET work_mem = '1GB'", Admin, "ALTER SYSTEM", false, ""},
	{"CREATE EXTENSION IF NOT EXISTS dblink", Admin, "CREATE EXTENSION", false, ""},
	{"DROP EXTENSION dblink", Admin, "DROP EXTENSION", false, ""},
	{"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", Admin, "CREATE EVENT TRIGGER", false, ""},
	{"CREATE TABLESPACE ts LOCATION '/tmp'", Admin, "CREATE TABLESPACE", false, ""},
	{"SELECT pg_terminate_backend(pid) FROM pg_stat_activity", Admin, "SELECT", false, ""},
	{"SELECT pg_cancel_backend(123)", Admin, "SELECT", false, ""},
	{"SELECT pg_catalog.pg_terminate_backend (1)", Admin, "SELECT", false, ""},
	{"SELECT pg_terminate_backend/**/(1)", Admin, "SELECT", false, ""},
	{`SELECT "pg_terminate_backend"(1)`, Admin, "SELECT", false, ""},
	{`SELECT U&"pg\005Fterminate_backend"(1)`, Unknown, "SELECT", false, ""},
	{`SELECT U&"pg!005Fterminate_backend" UESCAPE '!' (1)`, Unknown, "SELECT", false, ""},
	{"SELECT lo_import('/etc/passwd')", Admin, "SELECT", false, ""},
	{"SELECT lo_export(1, '/tmp/x')", Admin, "SELECT", false, ""},
	{"SELECT pg_read_file('/etc/passwd')", Admin, "SELECT", false, ""},
	{"SELECT * FROM pg_ls_dir('.')", Admin, "SELECT", false, ""},
	{"SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a int)", Admin, "SELECT", false, ""},
	{"SELECT dblink_exec('DROP TABLE t')", Admin, "SELECT", false, ""},
	{"SELECT set_config('role', 'postgres', false)", Admin, "SELECT", false, ""},
	{"SELECT 1 FROM a JOIN b ON set_config('role','x',false) IS NOT NULL", Admin, "SELECT", false, ""},
	{"INSERT INTO t SELECT pg_terminate_backend(1)", Admin, "INSERT", false, "t"},
	{"SELECT pg_reload_conf()", Admin, "SELECT", false, ""},
	{"COPY t FROM PROGRAM 'curl evil'", Admin, "COPY", false, "t"},
	{"COPY (SELECT 1) TO PROGRAM 'sh -c x'", Admin, "COPY", false, ""},
	{"COPY t TO '/tmp/out.csv'", Admin, "COPY", false, ""},
	{"COPY t FROM '/etc/passwd'", Admin, "COPY", false, "t"},
	{"SET session_replication_role = replica", Admin, "SET", false, ""},

	// Transaction.
	{"BEGIN", Transaction, "BEGIN", false, ""},
	{"BEGIN ISOLATION LEVEL SERIALIZABLE", Transaction, "BEGIN", false, ""},
	{"START TRANSACTION READ ONLY", Transaction, "START TRANSACTION", false, ""},
	{"COMMIT", Transaction, "COMMIT", false, ""},
	{"end", Transaction, "END", false, ""},
	{"ROLLBACK TO SAVEPOINT s", Transaction, "ROLLBACK", false, ""},
	{"ABORT", Transaction, "ABORT", false, ""},
	{"SAVEPOINT s", Transaction, "SAVEPOINT", false, ""},
	{"RELEASE SAVEPOINT s", Transaction, "RELEASE", false, ""},
	{"PREPARE TRANSACTION 'x'", Transaction, "PREPARE TRANSACTION", false, ""},
	{"COMMIT PREPARED 'x'", Transaction, "COMMIT PREPARED", false, ""},

	// Session.
	{"SET search_path = app, public", Session, "SET", false, ""},
	{"SET LOCAL statement_timeout TO '5s'", Session, "SET", false, ""},
	{"SET TIME ZONE 'UTC'", Session, "SET", false, ""},
	{"SET my.role = 'x'", Session, "SET", false, ""},
	{"RESET search_path", Session, "RESET", false, ""},
	{"SHOW ALL", Session, "SHOW", false, ""},
	{"DISCARD PLANS", Session, "DISCARD", false, ""},
	{"LISTEN ch", Session, "LISTEN", false, ""},
	{"UNLISTEN *", Session, "UNLISTEN", false, ""},
	{"NOTIFY ch, 'x'", Session, "NOTIFY", false, ""},
	{"SELECT pg_notify('ch', 'x')", Session, "SELECT", false, ""},
	{"DEALLOCATE ALL", Session, "DEALLOCATE", false, ""},

	// Unknown.
	{"DO $$ BEGIN DELETE FROM t; END $$", Unknown, "DO", false, ""},
	{"EXECUTE q(1)", Unknown, "EXECUTE", false, ""},
	{"CALL p()", Unknown, "CALL", false, ""},
	{"DEL/**/ETE FROM t", Unknown, "DEL", false, ""},
	{"DEL--x\nETE FROM t", Unknown, "DEL", false, ""},
	{"FROBNICATE t", Unknown, "FROBNICATE", false, ""},
	{`"DELETE" FROM t`, Unknown, "", false, ""},
	{"DELETE\u00a0FROM t", Unknown, "DELETE\u00a0FROM", false, ""},
	{"SELECT (1", Unknown, "", false, ""},
	{"SELECT 1)", Unknown, "", false, ""},
	{"SELECT 'unterminated", Unknown, "", false, ""},
	{"SELECT 1 /* unterminated /* */", Unknown, "", false, ""},
	{"SELECT $a$ unterminated $b$", Unknown, "", false, ""},
	{`SELECT "unterminated`, Unknown, "", false, ""},
	{"SELECT E'\\'", Unknown, "", false, ""},
	{"START", Unknown, "START", false, ""},
	{"CREATE FROBNICATOR x", Unknown, "CREATE", false, ""},
	{"SELECT query_to_xml('select pg_terminate_backend(1)', true, true, '')", Unknown, "SELECT", false, ""},
	{`SET U&"r\006Fle" = 'postgres'`, Unknown, "SET", false, ""},
	{"SELECT 'x\\'; DELETE FROM t; --'", Unknown, "", false, ""},
	{"SELECT '\\''; DELETE FROM t; --'", Unknown, "", false, ""},
}

func TestClassifySingle(t *testing.T) {
	if len(singleCases) < 80 {
		t.Fatalf("only %d cases", len(singleCases))
	}
	for _, tc := range singleCases {
		got := Classify(tc.sql)
		if len(got) != 1 {
			t.Errorf("%q: %d statements, want 1: %+v", tc.sql, len(got), got)
			continue
		}
		st := got[0]
		if st.Class != tc.class || st.Command != tc.cmd || st.HasWhere != tc.where {
			t.Errorf("%q: got %v %q where=%v, want %v %q where=%v", tc.sql, st.Class, st.Command, st.HasWhere, tc.class, tc.cmd, tc.where)
		}
		if tc.tables != "-" && strings.Join(st.Tables, ",") != tc.tables {
			t.Errorf("%q: tables %q, want %q", tc.sql, st.Tables, tc.tables)
		}
		if st.Text != strings.TrimSpace(tc.sql) && st.Class != Unknown {
			t.Errorf("%q: text %q", tc.sql, st.Text)
		}
	}
}

var multiCases = []struct {
	sql     string
	classes []Class
	worst   Class
}{
	{"SELECT 1; DELETE FROM t", []Class{Read, Write}, Write},
	{"SELECT 1;DROP TABLE t;", []Class{Read, DDL}, DDL},
	{"select 1 --\rdelete from t", []Class{Read}, Read}, // \r ends the comment: one statement "select 1 delete from t"
	{"SELECT 1;;; ;", []Class{Read}, Read},
	{";", nil, Read},
	{"", nil, Read},
	{"-- only a comment", nil, Read},
	{"/* a */ ; /* b */", nil, Read},
	{"BEGIN; UPDATE t SET a = 1 WHERE id = 1; COMMIT", []Class{Transaction, Write, Transaction}, Write},
	{"SET standard_conforming_strings = off; SELECT '\\'; DELETE FROM t; --'", []Class{Unknown}, Unknown},
	{"SELECT 1; DO $$ BEGIN END $$", []Class{Read, Unknown}, Unknown},
	{"SELECT 1; SELECT 'oops", []Class{Read, Unknown}, Unknown},
	{"SELECT $$;$$; SELECT 2", []Class{Read, Read}, Read},
	{"SELECT U&'a'\n'\\'; DELETE FROM t; --'", []Class{Read, Write}, Write}, // a U& string has no backslash escape of the quote
	{"SELECT 1; GRANT ALL ON t TO public; VACUUM", []Class{Read, DCL, Admin}, Admin},
	{"SELECT 1; SET ROLE postgres", []Class{Read, DCL}, DCL},
	{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", []Class{DDL, Transaction}, DDL},
	{"SELECT 1 FROM t WHERE a = $1; SELECT $2", []Class{Read, Read}, Read},
}

func TestClassifyMulti(t *testing.T) {
	for _, tc := range multiCases {
		got := Classify(tc.sql)
		var cl []Class
		for _, s := range got {
			cl = append(cl, s.Class)
		}
		if len(cl) != len(tc.classes) {
			t.Errorf("%q: classes %v, want %v", tc.sql, cl, tc.classes)
			continue
		}
		for i := range cl {
			if cl[i] != tc.classes[i] {
				t.Errorf("%q: classes %v, want %v", tc.sql, cl, tc.classes)
				break
			}
		}
		if w := Worst(got); w != tc.worst {
			t.Errorf("%q: worst %v, want %v", tc.sql, w, tc.worst)
		}
	}
}

func TestSplit(t *testing.T) {
	type want struct {
		start, end int
		text       string
		bad        bool
	}
	cases := []struct {
		sql  string
		want []want
	}{
		{"SELECT 1; DELETE FROM t", []want{{0, 8, "SELECT 1", false}, {9, 23, "DELETE FROM t", false}}},
		{"  a ;\n\n b;", []want{{0, 4, "a", false}, {5, 9, "b", false}}},
		{"SELECT ';' ; SELECT \";\"", []want{{0, 11, "SELECT ';'", false}, {12, 23, `SELECT ";"`, false}}},
		{"SELECT $t$;$t$;X", []want{{0, 14, "SELECT $t$;$t$", false}, {15, 16, "X", false}}},
		{"/* ; */ a -- ;\n; b", []want{{0, 15, "/* ; */ a -- ;", false}, {16, 18, "b", false}}},
		{"a; /* c */ ; b /* /* ; */ ; */", []want{{0, 1, "a", false}, {12, 30, "b /* /* ; */ ; */", false}}},
		{"a; b 'x; c", []want{{0, 1, "a", false}, {2, 10, "b 'x; c", true}}},
		{"a; E'\\';' ; b", []want{{0, 1, "a", false}, {2, 10, "E'\\';'", false}, {11, 13, "b", false}}},
		{"a$b$; c", []want{{0, 4, "a$b$", false}, {5, 7, "c", false}}},
		{"select $1;$2", []want{{0, 9, "select $1", false}, {10, 12, "$2", false}}},
		{"B'0''; x; --'", []want{{0, 13, "B'0''; x; --'", false}}},
		{"'a'\n';'; b", []want{{0, 7, "'a'\n';'", false}, {8, 10, "b", false}}},
		{"'a' ';'; b", []want{{0, 7, "'a' ';'", false}, {8, 10, "b", false}}},
		{"E'a'\n'\\';'; b", []want{{0, 10, "E'a'\n'\\';'", false}, {11, 13, "b", false}}},
		{"E'a' /* c */\n'\\';'; b", []want{{0, 16, "E'a' /* c */\n'\\'", false}, {17, 21, "'; b", true}}},
		{"X'a' -- c\n'; b", []want{{0, 14, "X'a' -- c\n'; b", true}}},
		{"E'a' -- c\n'\\';'; b", []want{{0, 15, "E'a' -- c\n'\\';'", false}, {16, 18, "b", false}}},
		{"E'a' -- c'\\';'; b", []want{{0, 17, "E'a' -- c'\\';'; b", false}}},
		{"E'a' -\n'\\';'; b", []want{{0, 10, "E'a' -\n'\\'", false}, {11, 15, "'; b", true}}},
	}
	for _, tc := range cases {
		spans, _, _ := split(tc.sql, false, nil)
		if len(spans) != len(tc.want) {
			t.Errorf("%q: %d spans %+v, want %d", tc.sql, len(spans), spans, len(tc.want))
			continue
		}
		for i, sp := range spans {
			w := tc.want[i]
			if sp.start != w.start || sp.end != w.end || sp.bad != w.bad || trimSpace(tc.sql[sp.start:sp.end]) != w.text {
				t.Errorf("%q[%d]: got [%d,%d) bad=%v %q, want [%d,%d) bad=%v %q", tc.sql, i, sp.start, sp.end, sp.bad,
					trimSpace(tc.sql[sp.start:sp.end]), w.start, w.end, w.bad, w.text)
			}
		}
		// Classify reports the same texts, in order.
		got := Classify(tc.sql)
		if len(got) == len(tc.want) {
			for i := range got {
				if got[i].Text != tc.want[i].text {
					t.Errorf("%q[%d]: Classify text %q, want %q", tc.sql, i, got[i].Text, tc.want[i].text)
				}
			}
		}
	}
}

func TestWorstOrder(t *testing.T) {
	order := []Class{Read, Transaction, Session, LiftReadOnly, Lock, Write, DDL, DCL, Admin, Unknown}
	for i := 1; i < len(order); i++ {
		st := []Statement{{Class: order[i-1]}, {Class: order[i]}, {Class: order[i-1]}}
		if w := Worst(st); w != order[i] {
			t.Errorf("Worst(%v,%v) = %v", order[i-1], order[i], w)
		}
	}
	if Worst(nil) != Read {
		t.Errorf("Worst(nil) = %v", Worst(nil))
	}
	if Worst([]Statement{{Class: Class(200)}}) != Unknown {
		t.Error("out-of-range class should be Unknown")
	}
	for c, n := range map[Class]string{Unknown: "unknown", Read: "read", DDL: "ddl", Session: "session", Class(99): "unknown"} {
		if c.String() != n {
			t.Errorf("%d.String() = %q", c, c.String())
		}
	}
}

func TestComplete(t *testing.T) {
	for s, want := range map[string]bool{
		"SELECT 1":        true,
		"SELECT 1 -- x":   false,
		"SELECT 1 -- x\n": true,
		"SELECT 'a":       false,
		"SELECT 'a\\'":    false, // unterminated when standard_conforming_strings is off
		"SELECT /* ":      false,
		"SELECT $$":       false,
		"":                true,
	} {
		if complete(s) != want {
			t.Errorf("complete(%q) = %v", s, !want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, tc := range singleCases {
		f.Add(tc.sql, "DELETE FROM t")
	}
	for _, tc := range multiCases {
		f.Add(tc.sql, "SELECT 1")
	}
	f.Add("SELECT 1", "SELECT '\\'; DELETE FROM t; --'")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range []string{a, b} {
			for _, st := range Classify(s) {
				if st.Text == "" || !strings.Contains(s, st.Text) {
					t.Fatalf("Classify(%q): text %q not a non-empty substring", s, st.Text)
				}
				if st.HasWhere && st.Command != "UPDATE" && st.Command != "DELETE" && st.Command != "MERGE" {
					t.Fatalf("Classify(%q): HasWhere on %q", s, st.Command)
				}
			}
		}
		if !complete(a) {
			return
		}
		ab := a + ";" + b
		wb := Worst(Classify(b))
		if w := Worst(Classify(ab)); rank(w) < rank(wb) {
			t.Fatalf("Worst(%q) = %v < Worst(%q) = %v", ab, w, b, wb)
		}
	})
}

// benchSQL is a ~1 KiB SELECT with joins, comments and literals.
var benchSQL = func() string {
	s := `/* dashboard query */
SELECT u.id, u.email, o.id AS order_id, o.total, p.name, -- per product
       coalesce(d.amount, 0) AS discount, count(*) OVER (PARTITION BY u.id) AS n,
       CASE WHEN o.status = 'shipped' THEN 'done' ELSE 'open' END AS state
FROM public.users AS u
JOIN public.orders o ON o.user_id = u.id AND o.created_at > now() - interval '30 days'
LEFT JOIN public.order_items oi ON oi.order_id = o.id
LEFT JOIN public.products p ON p.id = oi.product_id /* products may be gone */
LEFT JOIN LATERAL (SELECT sum(x.amount) AS amount FROM public.discounts x
                   WHERE x.order_id = o.id AND x.kind IN ('coupon', 'loyalty')) d ON true
WHERE u.deleted_at IS NULL
  AND u.email NOT LIKE '%@example.com'
  AND o.total BETWEEN 10.5 AND 1e6
  AND EXISTS (SELECT 1 FROM public.payments pay WHERE pay.order_id = o.id AND pay.state = 'ok')
GROUP BY u.id, u.email, o.id, o.total, p.name, d.amount, o.status
HAVING count(oi.id) > 0
ORDER BY o.total DESC, u.id
LIMIT 100 OFFSET 0`
	for len(s) < 1024 {
		s += " -- padding comment to reach one kilobyte\n"
	}
	return s
}()

func BenchmarkClassify(b *testing.B) {
	b.SetBytes(int64(len(benchSQL)))
	b.ReportAllocs()
	for b.Loop() {
		st := Classify(benchSQL)
		if len(st) != 1 || st[0].Class != Read {
			b.Fatal(st)
		}
	}
}
