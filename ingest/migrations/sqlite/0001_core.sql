-- The core schema on SQLite (the embedded backend of standalone mode): the same
-- tables as PostgreSQL's, with instants as INTEGER milliseconds since the epoch,
-- JSON as TEXT, bytes as BLOB, and lists as JSON arrays. There are no
-- partitions: retention deletes in batches.

CREATE TABLE checks (
    id                INTEGER PRIMARY KEY,
    slug              TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    group_name        TEXT NOT NULL DEFAULT '',
    description       TEXT,
    public            INTEGER NOT NULL DEFAULT 0,
    kind              TEXT NOT NULL DEFAULT '',
    position          INTEGER NOT NULL DEFAULT 0,
    interval_ms       INTEGER NOT NULL CHECK (interval_ms > 0),
    failure_threshold INTEGER NOT NULL CHECK (failure_threshold > 0),
    success_threshold INTEGER NOT NULL CHECK (success_threshold > 0),
    quorum            INTEGER CHECK (quorum > 0),
    reopen_window_ms  INTEGER NOT NULL CHECK (reopen_window_ms >= 0),
    config_hash       TEXT NOT NULL DEFAULT '',
    placeholder       INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    absent_since      INTEGER,
    retired_at        INTEGER,
    decided_through   INTEGER,
    latest            BLOB,
    status            TEXT NOT NULL DEFAULT 'unknown'
                      CHECK (status IN ('up', 'degraded', 'down', 'maintenance', 'unknown')),
    status_since      INTEGER
);

CREATE TABLE agents (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    zone       TEXT NOT NULL DEFAULT '',
    region     TEXT NOT NULL DEFAULT '',
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

CREATE TABLE results (
    check_id       INTEGER NOT NULL,
    scheduled_at   INTEGER NOT NULL,
    agent_id       INTEGER NOT NULL,
    start_delay_ms INTEGER NOT NULL,
    interval_ms    INTEGER NOT NULL,
    duration_us    INTEGER NOT NULL,
    dns_us         INTEGER,
    connect_us     INTEGER,
    tls_us         INTEGER,
    ttfb_us        INTEGER,
    transfer_us    INTEGER,
    assigned       INTEGER NOT NULL,
    outcome        INTEGER NOT NULL,
    reason         INTEGER NOT NULL,
    state          INTEGER,
    detail         TEXT,
    PRIMARY KEY (check_id, scheduled_at, agent_id)
) WITHOUT ROWID;

CREATE INDEX results_time ON results (scheduled_at);

CREATE TABLE rollups (
    level    INTEGER NOT NULL CHECK (level IN (0, 1, 2)),
    check_id INTEGER NOT NULL,
    bucket   INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    up       INTEGER NOT NULL,
    measures BLOB NOT NULL,
    -- 0 while a minute (hour) row has changed since it was folded into its
    -- hour (day)
    folded   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (level, check_id, bucket)
) WITHOUT ROWID;

CREATE INDEX rollups_unfolded ON rollups (level, check_id, bucket) WHERE NOT folded;

CREATE INDEX rollups_level_bucket ON rollups (level, bucket);

CREATE TABLE pairs (
    check_id INTEGER NOT NULL REFERENCES checks (id),
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    -- ingest::state::Pair::encode
    pair     BLOB NOT NULL,
    PRIMARY KEY (check_id, agent_id)
) WITHOUT ROWID;

CREATE TABLE status_changes (
    check_id  INTEGER NOT NULL REFERENCES checks (id),
    at        INTEGER NOT NULL,
    status    TEXT NOT NULL
              CHECK (status IN ('up', 'degraded', 'down', 'maintenance', 'unknown')),
    assigned  INTEGER NOT NULL,
    reporting INTEGER NOT NULL,
    failing   INTEGER NOT NULL,
    -- a JSON array of reason codes
    reasons   TEXT NOT NULL,
    PRIMARY KEY (check_id, at)
) WITHOUT ROWID;

CREATE TABLE incidents (
    id                     INTEGER PRIMARY KEY,
    title                  TEXT NOT NULL,
    impact                 TEXT NOT NULL CHECK (impact IN ('minor', 'major')),
    state                  TEXT NOT NULL
                           CHECK (state IN ('investigating', 'identified', 'monitoring', 'resolved')),
    auto                   INTEGER NOT NULL,
    check_id               INTEGER REFERENCES checks (id),
    started_at             INTEGER NOT NULL,
    resolved_at            INTEGER,
    resolved_automatically INTEGER NOT NULL DEFAULT 0,
    operator_updated       INTEGER NOT NULL DEFAULT 0,
    updated_at             INTEGER NOT NULL
);

CREATE INDEX incidents_auto_check ON incidents (check_id, id) WHERE auto;

CREATE TABLE incident_checks (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    check_id    INTEGER NOT NULL REFERENCES checks (id),
    PRIMARY KEY (incident_id, check_id)
) WITHOUT ROWID;

CREATE TABLE incident_updates (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('investigating', 'identified', 'monitoring', 'resolved')),
    message     TEXT NOT NULL,
    author      TEXT NOT NULL
);

CREATE INDEX incident_updates_incident ON incident_updates (incident_id, at);

CREATE TABLE maintenance_windows (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
    name        TEXT NOT NULL,
    description TEXT,
    -- a JSON array of check ids
    checks      TEXT NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL CHECK (ends_at > starts_at),
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (source, name, ends_at)
);

CREATE INDEX maintenance_windows_end ON maintenance_windows (ends_at);
