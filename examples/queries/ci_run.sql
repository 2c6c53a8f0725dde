-- Everything one CI run did, across targets, in time order: every row
-- whose identity carries the run's ID (GitHub's run_id claim, GitLab's
-- pipeline_id; the issuer's keep_claims must keep it). from and to
-- bound the run's time, so only those partitions are read.
--   gateway audit query ci_run --param run_id=42 --param from=-24h --param to=now
SELECT
    ts,
    ts_us,
    if(has(claim_keys, 'repository'), claim_values[indexOf(claim_keys, 'repository')],
       claim_values[indexOf(claim_keys, 'project_path')]) AS repository,
    subject,
    target,
    kind,
    multiIf(has(request_keys, 'sql'), request_values[indexOf(request_keys, 'sql')],
            has(request_keys, 'method'), concat(request_values[indexOf(request_keys, 'method')], ' ', request_values[indexOf(request_keys, 'path')]),
            '') AS request,
    verdict,
    status,
    session_id,
    seq
FROM events FINAL
WHERE (claim_values[indexOf(claim_keys, 'run_id')] = {run_id:String}
       OR claim_values[indexOf(claim_keys, 'pipeline_id')] = {run_id:String})
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
ORDER BY ts, ts_us, session_id, seq
