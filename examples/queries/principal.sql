-- Everything one principal did in a window, across targets and
-- protocols, in time order. principal is the token's subject (e.g.
-- repo:acme/app:ref:refs/heads/main) or its email.
--   gateway audit query principal --param principal=repo:acme/app:ref:refs/heads/main --param from=-24h --param to=now
SELECT
    ts,
    ts_us,
    target,
    protocol,
    kind,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    verdict,
    status,
    access_rule,
    claim_values[indexOf(claim_keys, 'run_id')] AS run_id,
    session_id,
    seq
FROM events FINAL
WHERE (subject = {principal:String} OR email = {principal:String})
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
ORDER BY ts, ts_us, session_id, seq
