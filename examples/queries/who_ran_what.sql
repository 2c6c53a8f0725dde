-- Who ran what against one target in a window, oldest first (session
-- open and close rows left out). FINAL shows a replayed event once.
--   gateway audit query who_ran_what --param target=orders-db --param from=-24h --param to=now
SELECT
    ts,
    ts_us,
    subject,
    email,
    claim_values[indexOf(claim_keys, 'repository')] AS repository,
    kind,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    verdict,
    status,
    duration_us,
    session_id,
    seq
FROM events FINAL
WHERE target = {target:String}
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
  AND kind NOT IN ('session.open', 'session.close')
ORDER BY ts, ts_us, session_id, seq
