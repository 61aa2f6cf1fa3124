-- Order sequences at or below `fenced_through_seq` belong to a life of
-- central stock that `spike sale recover` closed: recovery wrote every order
-- of that life it restored, and a writer still holding an entry of it (read
-- before Redis lost its state) must not add a seat central stock no longer
-- counts. 0: never recovered.
ALTER TABLE sales ADD COLUMN fenced_through_seq BIGINT NOT NULL DEFAULT 0;
