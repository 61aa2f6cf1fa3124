-- A waiting room's mode, so that a recovery restores a spillover room as
-- such: 1 when buyers pass straight through while demand stays under the
-- admission rate (`--queue auto`), 0 when every buyer waits (`--queue`).
ALTER TABLE sales ADD COLUMN queue_spillover BIGINT NOT NULL DEFAULT 0 CHECK (queue_spillover IN (0, 1));
