-- Push hooks (docs/chat.md, "Push hooks"), PostgreSQL flavour. Keep in step with
-- ../sqlite/0011_hooks.sql. One webhook per application, and the durable outbox of its
-- events: a chat write inserts its event in its own transaction (only when the application has
-- a hook), and the delivery task of any replica claims due rows (FOR UPDATE SKIP LOCKED, then
-- a lease), deletes them once delivered, or schedules the next attempt.
CREATE TABLE app_hooks (
    app_id     TEXT   PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    url        TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE hook_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          TEXT   NOT NULL REFERENCES app_hooks (app_id) ON DELETE CASCADE,
    payload         TEXT   NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT
);

CREATE INDEX hook_outbox_due ON hook_outbox (next_attempt_ms);
