-- PostgreSQL only (SQLite compares text as bytes already): ids compare as
-- bytes (the "C" collation) rather than by the database's locale. They are
-- tokens, not words: no query sorts them for people, equality is unchanged,
-- and the locale's strcoll made every index insertion of the order writer
-- dearer (three of the order table's indexes are on text).
ALTER TABLE orders
    ALTER COLUMN order_id TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN request_id TYPE TEXT COLLATE "C",
    ALTER COLUMN node_id TYPE TEXT COLLATE "C";
ALTER TABLE sales ALTER COLUMN event_id TYPE TEXT COLLATE "C";
