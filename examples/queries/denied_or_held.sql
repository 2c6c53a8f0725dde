-- Every denied or held action (and plugin errors) in a time window, with
-- the plugin and its reason. Replace: {from} and {to}
-- ('YYYY-MM-DD hh:mm:ss', server time zone).
SELECT
    ts,
    ts_us,
    target,
    subject,
    verdict,
    plugin,
    reason,
    request_keys,
    request_values,
    session_id,
    seq
FROM events FINAL
WHERE verdict IN ('deny', 'hold', 'error')
  AND ts >= toDateTime('{from}') AND ts < toDateTime('{to}')
ORDER BY ts, ts_us, session_id, seq
