-- A job family is whichever family package is registered (schedd/families/base.py), so the
-- family columns check the shape of a wire name (a-z and _, at most 40) instead of listing
-- three. SQLite cannot change a CHECK in place: both tables are rebuilt, their rows, ids
-- and AUTOINCREMENT high-water marks kept, their indexes made again. The migration runs
-- with foreign keys off (runs refer to schedules) and checks them before it commits.

CREATE TABLE schedules_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT NOT NULL UNIQUE,
    family           TEXT NOT NULL CHECK (family GLOB '[a-z]*' AND family NOT GLOB '*[^a-z_]*'
                                      AND length(family) <= 40),
    org_id           TEXT REFERENCES orgs(id),
    project_id       TEXT,
    cube_id          TEXT,
    name             TEXT,
    description      TEXT,
    cron             TEXT NOT NULL,
    cron_normalized  TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    full_build       INTEGER,
    spec             TEXT,
    active           INTEGER NOT NULL DEFAULT 1,
    next_fire_at     REAL,
    misfire_policy   TEXT NOT NULL DEFAULT 'fire_once'
                     CHECK (misfire_policy IN ('fire_once', 'skip', 'fire_all')),
    overlap_policy   TEXT NOT NULL DEFAULT 'forbid'
                     CHECK (overlap_policy IN ('forbid', 'buffer_one', 'allow', 'replace')),
    timeout          REAL,
    retries          INTEGER NOT NULL DEFAULT 0,
    history_strategy TEXT NOT NULL DEFAULT 'MINIMAL'
                     CHECK (history_strategy IN ('OFF', 'MINIMAL', 'ERROR', 'FULL')),
    retention_days   INTEGER NOT NULL DEFAULT 30,
    success_count    INTEGER NOT NULL DEFAULT 0,
    fail_count       INTEGER NOT NULL DEFAULT 0,
    last_run_uid     TEXT,
    last_run_at      REAL,
    last_run_status  TEXT,
    created_by       TEXT,
    created_at       REAL NOT NULL,
    updated_by       TEXT,
    updated_at       REAL NOT NULL
);
INSERT INTO schedules_new SELECT * FROM schedules;
INSERT INTO sqlite_sequence (name, seq) SELECT 'schedules_new', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'schedules_new');
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'schedules'), 0))
    WHERE name = 'schedules_new';
DROP TABLE schedules;
ALTER TABLE schedules_new RENAME TO schedules;

CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT NOT NULL UNIQUE,
    family           TEXT NOT NULL CHECK (family GLOB '[a-z]*' AND family NOT GLOB '*[^a-z_]*'
                                      AND length(family) <= 40),
    schedule_id      INTEGER REFERENCES schedules(id) ON DELETE CASCADE,
    overlap_key      TEXT NOT NULL,
    org_id           TEXT,
    project_id       TEXT,
    cube_id          TEXT,
    trigger          TEXT NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'inprogress', 'done', 'failed', 'canceled',
                                      'skipped', 'interrupted')),
    full_build       INTEGER,
    cron             TEXT,
    due_at           REAL,
    fires            INTEGER NOT NULL DEFAULT 1,
    created_at       REAL NOT NULL,
    started_at       REAL,
    ended_at         REAL,
    attempt          INTEGER NOT NULL DEFAULT 1,
    error            TEXT,
    exit_code        INTEGER,
    timed_out        INTEGER NOT NULL DEFAULT 0,
    skip_reason      TEXT,
    window_id        INTEGER,
    request_payload  TEXT,
    response_status  INTEGER,
    response_body    TEXT,
    complete         INTEGER NOT NULL DEFAULT 0,
    last_due_at      REAL
);
INSERT INTO runs_new SELECT * FROM runs;
INSERT INTO sqlite_sequence (name, seq) SELECT 'runs_new', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'runs_new');
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0))
    WHERE name = 'runs_new';
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE INDEX schedules_scope ON schedules(family, org_id, project_id, cube_id);
CREATE UNIQUE INDEX schedules_service_name ON schedules(name) WHERE family = 'service';
CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE active = 1;
CREATE INDEX runs_schedule ON runs(schedule_id, id);
CREATE INDEX runs_org ON runs(family, org_id, id);
CREATE INDEX runs_cube ON runs(family, org_id, project_id, cube_id, id);
CREATE INDEX runs_open ON runs(state) WHERE state IN ('queued', 'inprogress');
CREATE INDEX runs_created ON runs(schedule_id, created_at);
CREATE INDEX runs_created_at ON runs(created_at);
CREATE INDEX schedules_org_active ON schedules(org_id, family) WHERE active = 1;
