-- When the fence was last raised, in Unix milliseconds by the database's own
-- clock (0: never, or before this column existed). A later recovery measures
-- the time since on the same clock, so hosts whose clocks disagree never put
-- a new life's sequences below an earlier fence or its life.
ALTER TABLE sales ADD COLUMN fenced_at_ms BIGINT NOT NULL DEFAULT 0;

-- The sale's life (see spike_core::SaleLife): drawn when the sale is created,
-- kept by recovery, new with `sale create --force`. Order keys are bound to
-- it. 0 for sales recorded before lives.
ALTER TABLE sales ADD COLUMN life BIGINT NOT NULL DEFAULT 0;
