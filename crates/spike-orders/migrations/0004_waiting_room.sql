-- A sale's waiting room, so that a recovery restores a queued sale as
-- queued: positions admitted per second (0: no waiting room), most active
-- admitted buyers at once (0: no cap), how long an admission lasts (ms),
-- and when joining starts (Unix ms, 0: from the sale's creation).
ALTER TABLE sales ADD COLUMN queue_admit_rate BIGINT NOT NULL DEFAULT 0 CHECK (queue_admit_rate >= 0);
ALTER TABLE sales ADD COLUMN queue_max_active BIGINT NOT NULL DEFAULT 0 CHECK (queue_max_active >= 0);
ALTER TABLE sales ADD COLUMN queue_admit_window_ms BIGINT NOT NULL DEFAULT 0 CHECK (queue_admit_window_ms >= 0);
ALTER TABLE sales ADD COLUMN queue_joins_open_at_ms BIGINT NOT NULL DEFAULT 0 CHECK (queue_joins_open_at_ms >= 0);
