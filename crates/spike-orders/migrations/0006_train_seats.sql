-- Trains: a sale that is a train run records its layout (stations and seat
-- classes, spike-core's TrainLayout wire form; '' for other sales), and an
-- order of one records its seats (spike-core's Ticket wire form:
-- '<class>/<from>/<to>/<seat>.<seat>…'; NULL for other orders), so that
-- the audit can check seats and a recovery can rebuild them.
ALTER TABLE sales ADD COLUMN train TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ticket TEXT;
