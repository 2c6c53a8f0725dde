-- The slowest approval decisions in a window, longest wait first: who
-- asked, what for, who decided and how (allow or deny; status says
-- approved, denied, expired or cancelled).
--   gateway audit query slowest_approvals --param from=-24h --param to=now
SELECT
    approval_id,
    duration_us / 1e6 AS waited_s,
    verdict,
    status,
    approver,
    subject,
    target,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    ts
FROM events FINAL
WHERE kind = 'approval.decision'
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
ORDER BY duration_us DESC, approval_id
LIMIT 20
