-- The slowest approvals in a time window: approval rows (they carry an
-- approval_id), longest wait first, with who asked and who decided.
-- Replace: {from} and {to} ('YYYY-MM-DD hh:mm:ss', server time zone).
SELECT
    approval_id,
    duration_us / 1e6 AS waited_s,
    verdict,
    approver,
    subject,
    target,
    ts,
    session_id,
    seq
FROM events FINAL
WHERE approval_id != ''
  AND ts >= toDateTime('{from}') AND ts < toDateTime('{to}')
ORDER BY duration_us DESC
LIMIT 20
