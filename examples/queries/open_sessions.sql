-- Sessions opened in a window and not closed: still running, or left
-- open by a gateway that was killed (`gateway audit verify` says "open";
-- compare last_seen with the gateway's restarts). Oldest first, with how
-- many rows each wrote and when it was last seen. session_target is the
-- session's target (the greatest, when one session reached several).
--   gateway audit query open_sessions --param from=-24h --param to=now
SELECT
    session_id,
    min(ts) AS opened_at,
    max(ts) AS last_seen,
    count() AS row_count,
    any(protocol) AS session_protocol,
    max(target) AS session_target,
    any(subject) AS principal,
    any(claim_values[indexOf(claim_keys, 'run_id')]) AS ci_run_id,
    any(gateway_id) AS gateway
FROM events FINAL
WHERE ts >= {from:DateTime}
  AND kind NOT IN ('audit.checkpoint', 'approval.request', 'approval.vote', 'approval.decision')
GROUP BY session_id
HAVING countIf(kind = 'session.open') = 1 AND countIf(kind = 'session.close') = 0
   AND opened_at < {to:DateTime}
ORDER BY opened_at, session_id
