-- Refunds (退票): a paid order may be given back, becoming 'refunded'; its
-- seat is then owed to central stock like an expired or cancelled one's
-- (seat_returned_at_ms is set once it is back). The SQLite twin of this
-- file rebuilds the table, which is how SQLite changes a constraint.
ALTER TABLE orders DROP CONSTRAINT orders_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_state_check
    CHECK (state IN ('reserved', 'paid', 'expired', 'cancelled', 'refunded'));
ALTER TABLE orders DROP CONSTRAINT orders_check;
ALTER TABLE orders ADD CONSTRAINT orders_check
    CHECK (seat_returned_at_ms IS NULL OR state IN ('expired', 'cancelled', 'refunded'));
DROP INDEX orders_seat_owed;
CREATE INDEX orders_seat_owed ON orders (updated_at_ms)
    WHERE state IN ('expired', 'cancelled', 'refunded') AND seat_returned_at_ms IS NULL;
