SET allow_experimental_low_cardinality_type = 1;

CREATE DATABASE IF NOT EXISTS audit;

CREATE TABLE IF NOT EXISTS audit.schema_version
(
    version UInt32,
    applied_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
ORDER BY version;

CREATE TABLE IF NOT EXISTS audit.events
(
    ts DateTime,
    ts_us UInt32,
    event_id UUID,
    session_id UUID,
    seq UInt64,
    kind LowCardinality(String),
    gateway_id LowCardinality(String),
    protocol LowCardinality(String),
    listener LowCardinality(String),
    target LowCardinality(String),
    remote_addr String,
    issuer LowCardinality(String),
    subject String,
    email String,
    groups Array(String),
    claim_keys Array(String),
    claim_values Array(String),
    access_rule LowCardinality(String),
    request_keys Array(String),
    request_values Array(String),
    verdict LowCardinality(String),
    plugin LowCardinality(String),
    reason String,
    annotation_keys Array(String),
    annotation_values Array(String),
    status String,
    request_bytes Int64,
    response_bytes Int64,
    duration_us Int64,
    error String,
    approval_id String,
    approver String,
    prev_hash String,
    row_hash String,
    signature String,
    ingested_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (target, ts)
ORDER BY (target, ts, session_id, seq, event_id);

CREATE TABLE IF NOT EXISTS audit.sessions
(
    session_id UUID,
    gateway_id LowCardinality(String),
    protocol LowCardinality(String),
    listener LowCardinality(String),
    target LowCardinality(String),
    remote_addr String,
    issuer LowCardinality(String),
    subject String,
    email String,
    groups Array(String),
    claim_keys Array(String),
    claim_values Array(String),
    opened_at DateTime,
    opened_us UInt32,
    closed UInt8,
    closed_at DateTime,
    closed_us UInt32,
    status String,
    duration_us Int64,
    last_seq UInt64
)
ENGINE = ReplacingMergeTree(last_seq)
ORDER BY session_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.sessions_mv TO audit.sessions
AS SELECT
    session_id,
    gateway_id, protocol, listener, target, remote_addr,
    issuer, subject, email, groups, claim_keys, claim_values,
    toDateTime(intDiv(toInt64(toUInt32(ts)) * 1000000 + ts_us - if(kind = 'session.close', duration_us, 0), 1000000)) AS opened_at,
    toUInt32((toInt64(toUInt32(ts)) * 1000000 + ts_us - if(kind = 'session.close', duration_us, 0)) % 1000000) AS opened_us,
    CAST(kind = 'session.close' AS UInt8) AS closed,
    if(kind = 'session.close', ts, toDateTime(0)) AS closed_at,
    if(kind = 'session.close', ts_us, toUInt32(0)) AS closed_us,
    status,
    duration_us,
    seq AS last_seq
FROM audit.events
WHERE kind IN ('session.open', 'session.close');

CREATE TABLE IF NOT EXISTS audit.recordings
(
    session_id UUID,
    seq UInt64,
    chunk UInt32,
    ts DateTime,
    ts_us UInt32,
    events String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (session_id, seq);

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.recordings_mv TO audit.recordings
AS SELECT
    session_id,
    seq,
    toUInt32OrZero(request_values[indexOf(request_keys, 'chunk')]) AS chunk,
    ts,
    ts_us,
    request_values[indexOf(request_keys, 'events')] AS events
FROM audit.events
WHERE kind = 'session.recording' AND NOT has(annotation_keys, 'audit.spool_full');
