-- The statements, commands and requests run most often in a window, by
-- target: how many times, how many were refused (a plugin's deny, a
-- failed plugin, a 401 or 403) or held for approval, and the slowest run
-- in microseconds. The text is the request as the plugins left it
-- (masked); the same statement with other literals counts apart.
--   gateway audit query top_statements --param from=-24h --param to=now
SELECT
    target,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'command'), request_values[indexOf(request_keys, 'command')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    count() AS runs,
    countIf(verdict IN ('deny', 'error') OR (verdict = '' AND status IN ('401', '403'))) AS refused,
    countIf(verdict = 'hold') AS held,
    max(duration_us) AS slowest_us
FROM events FINAL
WHERE kind NOT IN ('session.open', 'session.close', 'audit.checkpoint', 'approval.request', 'approval.vote', 'approval.decision')
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
GROUP BY target, request
ORDER BY runs DESC, target, request
LIMIT 20
