-- Refunds (退票) and changes (改签): a paid order may be given back, becoming
-- 'refunded', or exchanged: 'changing' (it holds its seat while the new
-- ticket is bought; change_event names the run) then 'changed' (changed_to
-- names the new order) or 'paid' again. A refunded or changed order's
-- seat is then owed to central stock like an expired or cancelled one's.
-- SQLite cannot change a constraint, so the table is rebuilt with the new
-- ones (the columns of 0001 and 0006), its rows copied and its indexes made
-- again; the PostgreSQL twin of this file alters the constraints in place.
CREATE TABLE orders_refundable (
    order_id            TEXT PRIMARY KEY,
    event_id            TEXT NOT NULL,
    seq                 BIGINT NOT NULL,
    user_id             TEXT,
    request_id          TEXT NOT NULL,
    node_id             TEXT NOT NULL,
    state               TEXT NOT NULL
        CHECK (state IN ('reserved', 'paid', 'expired', 'cancelled', 'refunded', 'changing',
        'changed')),
    sold_at_ms          BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    seat_returned_at_ms BIGINT,
    ticket              TEXT,
    change_event        TEXT,
    changed_to          TEXT,
    CHECK (seat_returned_at_ms IS NULL OR state IN ('expired', 'cancelled', 'refunded', 'changed')),
    UNIQUE (event_id, seq)
);
INSERT INTO orders_refundable (order_id, event_id, seq, user_id, request_id, node_id, state,
    sold_at_ms, expires_at_ms, updated_at_ms, seat_returned_at_ms, ticket)
SELECT order_id, event_id, seq, user_id, request_id, node_id, state,
    sold_at_ms, expires_at_ms, updated_at_ms, seat_returned_at_ms, ticket
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_refundable RENAME TO orders;
CREATE INDEX orders_by_user ON orders (user_id, sold_at_ms);
CREATE INDEX orders_due ON orders (expires_at_ms) WHERE state = 'reserved';
CREATE INDEX orders_seat_owed ON orders (updated_at_ms)
    WHERE state IN ('expired', 'cancelled', 'refunded', 'changed') AND seat_returned_at_ms IS NULL;
