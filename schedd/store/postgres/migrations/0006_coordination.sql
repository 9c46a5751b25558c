-- Several instances on one database (PostgreSQL only; SQLite has one owner per file).

-- The firing lease: one row. `epoch` only grows: every change of holder raises it, and the
-- fire writes check it (schedd/store/postgres/lease.py). Times are the server's clock, in
-- epoch seconds, so instances whose clocks disagree still agree on who holds it.
CREATE TABLE fire_lease (
    id          integer PRIMARY KEY CHECK (id = 1),
    holder      text,
    incarnation text,
    epoch       bigint NOT NULL,
    expires_at  double precision
);
INSERT INTO fire_lease (id, holder, epoch, expires_at) VALUES (1, NULL, 0, NULL);

-- The instances alive: each beats (alive_until moves on); `incarnation` changes when an
-- instance starts again under the same name, so the runs of the one before are orphans.
CREATE TABLE instances (
    name         text PRIMARY KEY,
    incarnation  text NOT NULL,
    alive_until  double precision NOT NULL
);

-- Who holds an open run: the instance (and its incarnation) that recorded it. Runs whose
-- holder stopped beating are closed as interrupted by the instance that fires.
ALTER TABLE runs ADD COLUMN held_by text;
ALTER TABLE runs ADD COLUMN held_inc text;
CREATE INDEX runs_open_held ON runs(held_by) WHERE state IN ('queued', 'inprogress');
