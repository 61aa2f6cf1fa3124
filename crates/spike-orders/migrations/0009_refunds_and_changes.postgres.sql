-- Refunds (退票) and changes (改签): a paid order may be given back, becoming
-- 'refunded', or exchanged: 'changing' (it holds its seat while the new
-- ticket is bought; change_event names the run) then 'changed' (changed_to
-- names the new order) or 'paid' again. A refunded or changed order's
-- seat is then owed to central stock like an expired or cancelled one's
-- (seat_returned_at_ms is set once it is back). The SQLite twin of this
-- file rebuilds the table, which is how SQLite changes a constraint.
ALTER TABLE orders DROP CONSTRAINT orders_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_state_check
    CHECK (state IN ('reserved', 'paid', 'expired', 'cancelled', 'refunded', 'changing',
        'changed'));
ALTER TABLE orders DROP CONSTRAINT orders_check;
ALTER TABLE orders ADD CONSTRAINT orders_check
    CHECK (seat_returned_at_ms IS NULL OR state IN ('expired', 'cancelled', 'refunded', 'changed'));
DROP INDEX orders_seat_owed;
CREATE INDEX orders_seat_owed ON orders (updated_at_ms)
    WHERE state IN ('expired', 'cancelled', 'refunded', 'changed') AND seat_returned_at_ms IS NULL;
ALTER TABLE orders ADD COLUMN change_event TEXT COLLATE "C";
ALTER TABLE orders ADD COLUMN changed_to TEXT COLLATE "C";
