-- The waitlist's mirror: every entry of a train run's waitlist as central
-- stock last showed it (spike-core's WaitEntry wire form, keyed by its
-- place), copied by the order pipeline about once a second, so that `spike
-- sale recover` can restore the line a Redis that lost everything lost.
CREATE TABLE waitlist (
    event_id TEXT NOT NULL,
    place    BIGINT NOT NULL,
    entry    TEXT NOT NULL,
    PRIMARY KEY (event_id, place)
);
