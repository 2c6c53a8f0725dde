-- Masking in a window by target and detector: in how many places (a
-- field or a result column of one event) each detector fired and how
-- many values it found there (the host's detect.* annotations,
-- "detector=count" per place), and the columns the mask plugin masked by
-- name (detector "by name (mask.columns)", one value per column). The
-- values themselves are never recorded.
--   gateway audit query masking_by_detector --param from=-24h --param to=now
SELECT
    target,
    if(ann_key = 'mask.columns', 'by name (mask.columns)', splitByChar('=', hit)[1]) AS detector,
    count() AS places,
    sum(if(ann_key = 'mask.columns', 1, toUInt64OrZero(splitByChar('=', hit)[2]))) AS values_found
FROM
(
    SELECT target, ann_key, arrayJoin(splitByChar(',', ann_value)) AS hit
    FROM events FINAL
    ARRAY JOIN annotation_keys AS ann_key, annotation_values AS ann_value
    WHERE (ann_key LIKE 'detect.%' OR ann_key = 'mask.columns')
      AND ts >= {from:DateTime} AND ts < {to:DateTime}
)
GROUP BY target, detector
ORDER BY values_found DESC, target, detector
