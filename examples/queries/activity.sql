-- Activity by CI repository and principal in a window: how many
-- requests, statements and commands each ran, how many were refused (a
-- plugin's deny, a failed plugin, a 401 or 403 before any plugin ran)
-- or held for approval, how many targets it reached, and when.
-- repository is GitHub's repository claim or GitLab's project_path ('' for
-- a person's token or none); principal is the token's subject.
--   gateway audit query activity --param from=-24h --param to=now
SELECT
    if(has(claim_keys, 'repository'), claim_values[indexOf(claim_keys, 'repository')],
       claim_values[indexOf(claim_keys, 'project_path')]) AS repository,
    subject AS principal,
    count() AS actions,
    countIf(verdict IN ('deny', 'error') OR (verdict = '' AND status IN ('401', '403'))) AS refused,
    countIf(verdict = 'hold') AS held,
    uniqExact(target) AS targets,
    min(ts) AS first_seen,
    max(ts) AS last_seen
FROM events FINAL
WHERE kind NOT IN ('session.open', 'session.close', 'audit.checkpoint', 'approval.request', 'approval.vote', 'approval.decision')
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
GROUP BY repository, principal
ORDER BY actions DESC, repository, principal
