-- Organizations: AtScale's APIs scope everything by orgId; 'default' always exists.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    created_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    email          TEXT,
    password_hash  TEXT NOT NULL,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL
);

CREATE TABLE user_orgs (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id   TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, org_id)
) WITHOUT ROWID;

-- Only a hash of each token is kept; the token itself is shown once.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    name        TEXT,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE INDEX tokens_user ON tokens(user_id);

-- One row per schedule of every family:
--   maintenance (org maintenance, per org), aggregate (cube builds, per org/project/cube),
--   service (service jobs, Volt MX's jobs).
CREATE TABLE schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT NOT NULL UNIQUE,
    family           TEXT NOT NULL CHECK (family IN ('maintenance', 'aggregate', 'service')),
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
CREATE INDEX schedules_scope ON schedules(family, org_id, project_id, cube_id);
CREATE UNIQUE INDEX schedules_service_name ON schedules(name) WHERE family = 'service';
CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE active = 1;

-- Every due fire ends as exactly one row here: a run, or a skip ('skipped' with a
-- reason); `fires` > 1 when one misfire row accounts for several missed fires.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT NOT NULL UNIQUE,
    family           TEXT NOT NULL CHECK (family IN ('maintenance', 'aggregate', 'service')),
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
    complete         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_schedule ON runs(schedule_id, id);
CREATE INDEX runs_org ON runs(family, org_id, id);
CREATE INDEX runs_cube ON runs(family, org_id, project_id, cube_id, id);
CREATE INDEX runs_open ON runs(state) WHERE state IN ('queued', 'inprogress');
CREATE INDEX runs_created ON runs(schedule_id, created_at);

-- Maintenance windows (Prod-Manager's maintenances) and their timeline.
CREATE TABLE windows (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT NOT NULL,
    description           TEXT,
    external_reference    TEXT,
    external_link         TEXT,
    status                TEXT NOT NULL
                          CHECK (status IN ('scheduled', 'in-progress', 'succeed', 'failed', 'canceled')),
    scope_id              INTEGER NOT NULL,
    service_id            INTEGER NOT NULL,
    service_status        TEXT NOT NULL CHECK (service_status IN ('up', 'degraded', 'down')),
    creation_date         REAL NOT NULL,
    scheduled_start_date  REAL NOT NULL,
    scheduled_end_date    REAL NOT NULL,
    start_date            REAL,
    end_date              REAL
);
CREATE INDEX windows_start ON windows(scheduled_start_date);
CREATE INDEX windows_open ON windows(status) WHERE status IN ('scheduled', 'in-progress');

CREATE TABLE window_events (
    id             INTEGER PRIMARY KEY,
    window_id      INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    creation_date  REAL NOT NULL,
    content        TEXT NOT NULL,
    internal       INTEGER NOT NULL DEFAULT 0,
    type           TEXT NOT NULL CHECK (type IN ('create', 'update', 'comment'))
);
CREATE INDEX window_events_window ON window_events(window_id, id);
