-- The order ledger. Written in the SQL that PostgreSQL and SQLite share, so
-- both backends run this same file.

-- Each sale's rules, kept so that central stock can be rebuilt after Redis
-- loses its state (`spike sale recover`).
CREATE TABLE sales (
    event_id          TEXT PRIMARY KEY,
    total             BIGINT NOT NULL CHECK (total > 0),
    per_user_limit    BIGINT NOT NULL CHECK (per_user_limit >= 0),
    opens_at_ms       BIGINT NOT NULL,
    payment_window_ms BIGINT NOT NULL CHECK (payment_window_ms > 0)
);

-- One row per sold seat. `state` moves only from 'reserved', by conditional
-- updates; `seat_returned_at_ms` is set once an expired or cancelled order's
-- seat is back in central stock (until then the row is the release's outbox).
CREATE TABLE orders (
    order_id            TEXT PRIMARY KEY,
    event_id            TEXT NOT NULL,
    seq                 BIGINT NOT NULL,
    user_id             TEXT,
    request_id          TEXT NOT NULL,
    node_id             TEXT NOT NULL,
    state               TEXT NOT NULL
        CHECK (state IN ('reserved', 'paid', 'expired', 'cancelled')),
    sold_at_ms          BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    seat_returned_at_ms BIGINT,
    CHECK (seat_returned_at_ms IS NULL OR state IN ('expired', 'cancelled')),
    UNIQUE (event_id, seq)
);

CREATE INDEX orders_by_user ON orders (user_id, sold_at_ms);
CREATE INDEX orders_due ON orders (expires_at_ms) WHERE state = 'reserved';
CREATE INDEX orders_seat_owed ON orders (updated_at_ms)
    WHERE state IN ('expired', 'cancelled') AND seat_returned_at_ms IS NULL;
