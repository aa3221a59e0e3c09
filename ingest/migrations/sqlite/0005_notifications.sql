-- The notification outbox. An event is written in the same transaction as
-- the change that causes it, so a rolled-back change sends nothing and a
-- committed one is never lost. A worker expands each event into one
-- delivery per matching channel; workers lease due deliveries (commit),
-- send them, and mark the outcome: no transaction is held across a send.
CREATE TABLE events (
    -- Deterministic, from the change: `incident-12-345` is incident 12's
    -- update 345, so a retried transaction never makes a second event.
    id       TEXT PRIMARY KEY,
    type     TEXT NOT NULL,
    at       INTEGER NOT NULL,
    -- What deliveries are ordered within (`incident-12`), and the order.
    subject  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    -- JSON text.
    data     TEXT NOT NULL,
    -- Only this channel (a test event), else every matching one.
    channel  TEXT,
    expanded INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX events_unexpanded ON events (seq) WHERE NOT expanded;

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- The channel's name, never its URL.
    channel      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       INTEGER NOT NULL,
    locked_until INTEGER,
    last_error   TEXT,
    done_at      INTEGER,
    UNIQUE (event_id, channel)
);

CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
CREATE INDEX deliveries_order ON deliveries (channel, subject, seq) WHERE state = 'pending';
