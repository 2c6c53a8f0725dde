-- Everything one CI run did: every row whose identity carries the run's
-- run_id claim, in order. Replace: {run_id}, and {from}/{to}
-- ('YYYY-MM-DD hh:mm:ss') around the run so only those partitions are read.
-- A row without the claim gives '' and does not match.
SELECT
    ts,
    ts_us,
    claim_values[indexOf(claim_keys, 'repository')] AS repository,
    target,
    kind,
    request_keys,
    request_values,
    verdict,
    status,
    session_id,
    seq
FROM events FINAL
WHERE claim_values[indexOf(claim_keys, 'run_id')] = '{run_id}'
  AND ts >= toDateTime('{from}') AND ts < toDateTime('{to}')
ORDER BY session_id, seq
