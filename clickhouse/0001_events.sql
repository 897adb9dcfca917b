-- Raw usage events, append-only. One row per accepted idempotency key (claimed in PostgreSQL first).
-- ReplacingMergeTree collapses exact repeats (a retry re-sending a half-done claim writes the very same sorting key);
-- readers use FINAL so that a repeat not yet merged is still counted once.
CREATE TABLE IF NOT EXISTS events
(
    org_id          UUID,
    mode            LowCardinality(String),
    customer_id     UUID,
    event_name      LowCardinality(String),
    timestamp       DateTime64(6, 'UTC'),
    idempotency_key String,
    properties      String CODEC(ZSTD(1)),
    received_at     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (org_id, mode, customer_id, event_name, timestamp, idempotency_key)
