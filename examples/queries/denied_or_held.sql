-- Every action refused or held in a window, in time order, with why:
-- refused before any plugin ran (401: no or bad token; 403: no access
-- rule grants it; a PostgreSQL login refused), a plugin's deny or hold,
-- a plugin that failed (error), and approvals denied or expired. outcome
-- is the plugin verdict, or "refused" when none ran; why is the
-- plugin's reason, or the refusal's error.
--   gateway audit query denied_or_held --param from=-24h --param to=now
SELECT
    ts,
    ts_us,
    target,
    protocol,
    kind,
    subject,
    if(verdict != '', verdict, 'refused') AS outcome,
    status,
    plugin,
    if(reason != '', reason, error) AS why,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    approval_id,
    session_id,
    seq
FROM events FINAL
WHERE (verdict IN ('deny', 'hold', 'error') OR status IN ('401', '403'))
  AND kind != 'audit.checkpoint'
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
ORDER BY ts, ts_us, session_id, seq
