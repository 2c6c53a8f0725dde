-- What was masked where: one line per masking annotation (plugin, target,
-- what it masked) and how often, in a time window. Replace: {from} and
-- {to} ('YYYY-MM-DD hh:mm:ss', server time zone).
SELECT
    target,
    plugin,
    annotation_values[indexOf(annotation_keys, 'masked')] AS masked,
    count() AS times,
    min(ts) AS first_seen,
    max(ts) AS last_seen
FROM events FINAL
WHERE has(annotation_keys, 'masked')
  AND ts >= toDateTime('{from}') AND ts < toDateTime('{to}')
GROUP BY target, plugin, masked
ORDER BY times DESC, target, plugin, masked
