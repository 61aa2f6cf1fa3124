-- Whether a sale's buyers must carry a signed token (1) or are trusted by
-- the user id they give (0). Sales recorded before this column existed were
-- open.
ALTER TABLE sales ADD COLUMN token_auth BIGINT NOT NULL DEFAULT 0 CHECK (token_auth IN (0, 1));
