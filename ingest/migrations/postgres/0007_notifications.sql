-- The notification outbox. An event is written in the same transaction as
-- the change that causes it, so a rolled-back change sends nothing and a
-- committed one is never lost. A worker expands each event into one
-- delivery per matching channel; workers lease due deliveries (commit),
-- send them, and mark the outcome: no transaction is held across a send.
CREATE TABLE events (
    -- Deterministic, from the change: `incident-12-345` is incident 12's
    -- update 345, so a retried transaction never makes a second event.
    id       text PRIMARY KEY,
    type     text NOT NULL,
    at       timestamptz NOT NULL,
    -- What deliveries are ordered within (`incident-12`), and the order.
    subject  text NOT NULL,
    seq      bigint NOT NULL,
    -- JSON as text: jsonb refuses U+0000, which an incident's text may hold.
    data     text NOT NULL,
    -- Only this channel (a test event), else every matching one.
    channel  text,
    expanded boolean NOT NULL DEFAULT false
);

CREATE INDEX events_unexpanded ON events (seq) WHERE NOT expanded;

CREATE TABLE deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- The channel's name, never its URL.
    channel      text NOT NULL,
    subject      text NOT NULL,
    seq          bigint NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL,
    locked_until timestamptz,
    last_error   text,
    done_at      timestamptz,
    UNIQUE (event_id, channel)
);

CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
CREATE INDEX deliveries_order ON deliveries (channel, subject, seq) WHERE state = 'pending';
