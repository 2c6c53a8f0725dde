-- What pgx's own test suite expects of its database (pgx_test), written
-- for the throwaway cluster of TestPgxConformance. It runs as the
-- cluster's superuser, in pgx_test, through `psql -c` (one implicit
-- transaction).

-- Types the pgtype tests round-trip.
CREATE EXTENSION hstore;
CREATE EXTENSION ltree;
CREATE DOMAIN uint64 AS numeric(20,0);

-- PGX_TEST_DATABASE logs in as pgx_md5, as pgx's CI does, both directly
-- and as the gateway's target credential. md5users puts it on testenv's
-- md5 line of pg_hba.conf.
SET password_encryption = 'md5';
CREATE ROLE pgx_md5 LOGIN SUPERUSER IN ROLE md5users PASSWORD 'secret';
SET password_encryption = 'scram-sha-256';

-- The aclitem tests name these roles; aclitem input refuses unknown ones.
-- testenv's superuser is tollgate_admin, so "postgres" has to be made.
CREATE ROLE postgres SUPERUSER;
CREATE ROLE " tricky, ' } "" \ test user " SUPERUSER;
