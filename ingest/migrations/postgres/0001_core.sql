-- The core schema (DESIGN §5, §6). Status changes and incidents are kept
-- forever; raw results are partitioned by UTC day (partitions are made ahead
-- by ingest).

CREATE TABLE checks (
    id                integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug              text NOT NULL UNIQUE,
    name              text NOT NULL,
    group_name        text NOT NULL DEFAULT '',
    description       text,
    -- Placeholders (results for a check ingest does not know yet) stay private.
    public            boolean NOT NULL DEFAULT false,
    kind              text NOT NULL DEFAULT '',
    position          integer NOT NULL DEFAULT 0,
    interval_ms       bigint NOT NULL CHECK (interval_ms > 0),
    failure_threshold integer NOT NULL CHECK (failure_threshold > 0),
    success_threshold integer NOT NULL CHECK (success_threshold > 0),
    -- NULL means majority.
    quorum            integer CHECK (quorum > 0),
    reopen_window_ms  bigint NOT NULL CHECK (reopen_window_ms >= 0),
    config_hash       text NOT NULL DEFAULT '',
    placeholder       boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    absent_since      timestamptz,
    retired_at        timestamptz,
    -- Status is decided up to here: every later recompute starts at or before
    -- it, so no instant (a silence, a window's end) is ever skipped.
    decided_through   timestamptz,
    -- each location's newest sample (ingest::store::encode_latest): enough,
    -- with a message's own results, to decide the status of in-order data
    latest            bytea,
    status            text NOT NULL DEFAULT 'unknown'
                      CHECK (status IN ('up', 'degraded', 'down', 'maintenance', 'unknown')),
    status_since      timestamptz
);

CREATE TABLE agents (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    zone       text NOT NULL DEFAULT '',
    region     text NOT NULL DEFAULT '',
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- Narrow rows: integer keys, 8-byte columns first then 4 then 2 (no padding),
-- phases as integers, the reason as a code, details only when not ok. The key
-- also serves the range scans by (check, time).
CREATE TABLE results (
    scheduled_at   timestamptz NOT NULL,
    check_id       integer NOT NULL,
    agent_id       integer NOT NULL,
    -- started_at - scheduled_at
    start_delay_ms integer NOT NULL,
    interval_ms    integer NOT NULL,
    duration_us    integer NOT NULL,
    dns_us         integer,
    connect_us     integer,
    tls_us         integer,
    ttfb_us        integer,
    transfer_us    integer,
    assigned       smallint NOT NULL,
    -- 0 up, 1 degraded, 2 down, 3 a value from a newer version
    outcome        smallint NOT NULL,
    -- the index in the documented reason list; 255 for one from a newer
    -- version (its text is in detail)
    reason         smallint NOT NULL,
    -- The pair's state after this result (0 passing, 1 degraded, 2 failing);
    -- NULL when it arrived too late to move state.
    state          smallint,
    -- message, facts and assertions of a result that is not ok
    detail         jsonb,
    PRIMARY KEY (check_id, scheduled_at, agent_id)
) PARTITION BY RANGE (scheduled_at);

-- Latency per check and minute (level 0, kept 14 days), hour (1, 400 days)
-- and UTC day (2, forever): see ingest/src/rollup.rs for `measures`.
CREATE TABLE rollups (
    level    smallint NOT NULL CHECK (level IN (0, 1, 2)),
    check_id integer NOT NULL,
    bucket   timestamptz NOT NULL,
    count    integer NOT NULL,
    up       integer NOT NULL,
    measures bytea NOT NULL,
    -- false while a minute (hour) row has changed since it was folded into
    -- its hour (day)
    folded   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (level, check_id, bucket)
);

CREATE INDEX rollups_unfolded ON rollups (level, check_id, bucket) WHERE NOT folded;

CREATE INDEX rollups_level_bucket ON rollups (level, bucket);

-- One row per (check, location): the fold checkpoint and the reorder buffer.
CREATE TABLE pairs (
    check_id integer NOT NULL REFERENCES checks (id),
    agent_id integer NOT NULL REFERENCES agents (id),
    -- ingest::state::Pair::encode
    pair     bytea NOT NULL,
    PRIMARY KEY (check_id, agent_id)
);

CREATE TABLE status_changes (
    check_id  integer NOT NULL REFERENCES checks (id),
    at        timestamptz NOT NULL,
    status    text NOT NULL
              CHECK (status IN ('up', 'degraded', 'down', 'maintenance', 'unknown')),
    assigned  integer NOT NULL,
    reporting integer NOT NULL,
    failing   integer NOT NULL,
    reasons   text[] NOT NULL,
    PRIMARY KEY (check_id, at)
);

CREATE TABLE incidents (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title                  text NOT NULL,
    impact                 text NOT NULL CHECK (impact IN ('minor', 'major')),
    state                  text NOT NULL
                           CHECK (state IN ('investigating', 'identified', 'monitoring', 'resolved')),
    -- Opened by ingest for `check_id`; operator incidents have auto = false.
    auto                   boolean NOT NULL,
    check_id               integer REFERENCES checks (id),
    started_at             timestamptz NOT NULL,
    resolved_at            timestamptz,
    resolved_automatically boolean NOT NULL DEFAULT false,
    operator_updated       boolean NOT NULL DEFAULT false,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX incidents_auto_check ON incidents (check_id, id) WHERE auto;
CREATE INDEX incidents_open ON incidents (id) WHERE state <> 'resolved';

CREATE TABLE incident_checks (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    check_id    integer NOT NULL REFERENCES checks (id),
    PRIMARY KEY (incident_id, check_id)
);

CREATE TABLE incident_updates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    at          timestamptz NOT NULL,
    state       text NOT NULL
                CHECK (state IN ('investigating', 'identified', 'monitoring', 'resolved')),
    message     text NOT NULL,
    author      text NOT NULL
);

CREATE INDEX incident_updates_incident ON incident_updates (incident_id, at);

-- Windows from the YAML (source = config, kept in step by catalog sync) and
-- from the admin API (source = api, never touched by sync).
CREATE TABLE maintenance_windows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL CHECK (source IN ('config', 'api')),
    name        text NOT NULL,
    description text,
    checks      text[] NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Config rows are keyed by their nominal end: a window first synced while
    -- already running starts at the sync, never in the past.
    UNIQUE (source, name, ends_at)
);

CREATE INDEX maintenance_windows_end ON maintenance_windows (ends_at);
