-- Who ran what against a target in a time window, oldest first.
-- Replace: {target} (e.g. orders-db), {from} and {to} ('YYYY-MM-DD hh:mm:ss',
-- server time zone). FINAL shows a replayed event once.
SELECT
    ts,
    ts_us,
    issuer,
    subject,
    email,
    kind,
    request_keys,
    request_values,
    verdict,
    status,
    duration_us,
    session_id,
    seq
FROM events FINAL
WHERE target = '{target}'
  AND ts >= toDateTime('{from}') AND ts < toDateTime('{to}')
  AND kind NOT IN ('session.open', 'session.close')
ORDER BY ts, ts_us, session_id, seq
