-- Every masking in a window, one line per place masked: which field or
-- result column, and which detectors fired there and how often (the
-- host's detect.<field> and detect.column.<name> annotations), or the
-- columns the mask plugin masked by name (mask.columns). The value itself
-- is never recorded. values_masked is the plugins' own count (mask.values
-- plus redact.values) for the whole event.
--   gateway audit query masked --param from=-24h --param to=now
SELECT
    ts,
    ts_us,
    target,
    kind,
    subject,
    multiIf(ann_key LIKE 'detect.column.%', concat('column ', substring(ann_key, 15)),
            ann_key LIKE 'detect.%', concat('field ', substring(ann_key, 8)),
            concat('columns ', ann_value)) AS masked_where,
    if(ann_key LIKE 'detect.%', ann_value, 'by name (mask.columns)') AS detectors,
    toUInt64OrZero(annotation_values[indexOf(annotation_keys, 'mask.values')])
      + toUInt64OrZero(annotation_values[indexOf(annotation_keys, 'redact.values')]) AS values_masked,
    session_id,
    seq
FROM events FINAL
ARRAY JOIN annotation_keys AS ann_key, annotation_values AS ann_value
WHERE (ann_key LIKE 'detect.%' OR ann_key = 'mask.columns')
  AND ts >= {from:DateTime} AND ts < {to:DateTime}
ORDER BY ts, ts_us, session_id, seq, masked_where
