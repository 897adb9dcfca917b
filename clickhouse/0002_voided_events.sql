-- Voided events: corrections without data loss. The raw rows stay in `events`; every reader leaves out the keys
-- listed here. Who voided what, when and why is recorded in PostgreSQL (event_voids).
CREATE TABLE IF NOT EXISTS voided_events
(
    org_id          UUID,
    mode            LowCardinality(String),
    idempotency_key String,
    void_id         UUID,
    voided_at       DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, mode, idempotency_key)
