-- Public email subscriptions (double opt-in) and their mail queue.
--
-- A subscription holds no token: links are signed (HMAC) over its id and
-- `nonce`, so deleting the row, or making it again, voids every old link.
CREATE TABLE subscriptions (
    id           INTEGER PRIMARY KEY,
    -- Lowercased; unique, so one address is one subscription.
    email        TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'suppressed')),
    nonce        TEXT NOT NULL,
    -- JSON lists of check ids and group names; both empty: everything public.
    check_ids    TEXT NOT NULL DEFAULT '[]',
    group_names  TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    -- Confirmation mails sent on `mail_day` (days since the epoch, UTC).
    mail_day     INTEGER NOT NULL DEFAULT 0,
    mails        INTEGER NOT NULL DEFAULT 0,
    -- Why an operator suppressed it (bounced, complained).
    reason       TEXT
);

CREATE INDEX subscriptions_pending ON subscriptions (created_at) WHERE state = 'pending';

-- One mail to one subscriber: an event's subscriber audience (a delivery
-- to `@subscribers`) expanded per address, or a confirmation. A separate
-- queue, sent at its own rate, so operator channels never wait behind it.
-- Unsubscribing deletes the subscription and, by cascade, these rows.
CREATE TABLE subscriber_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    -- 0: a confirmation (first); 1: a notice.
    priority        INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          INTEGER NOT NULL,
    locked_until    INTEGER,
    last_error      TEXT,
    done_at         INTEGER,
    UNIQUE (event_id, subscription_id)
);

CREATE INDEX subscriber_deliveries_due ON subscriber_deliveries (priority, due_at)
    WHERE state = 'pending';
CREATE INDEX subscriber_deliveries_order ON subscriber_deliveries (subscription_id, subject, seq)
    WHERE state = 'pending';
