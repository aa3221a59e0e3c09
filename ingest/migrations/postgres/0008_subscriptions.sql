-- Public email subscriptions (double opt-in) and their mail queue.
--
-- A subscription holds no token: links are signed (HMAC) over its id and
-- `nonce`, so deleting the row, or making it again, voids every old link.
CREATE TABLE subscriptions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Lowercased; unique, so one address is one subscription.
    email        text NOT NULL UNIQUE,
    state        text NOT NULL CHECK (state IN ('pending', 'confirmed', 'suppressed')),
    nonce        text NOT NULL,
    -- JSON lists of check ids and group names; both empty: everything public.
    check_ids    text NOT NULL DEFAULT '[]',
    group_names  text NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    -- Confirmation mails sent on `mail_day` (days since the epoch, UTC).
    mail_day     bigint NOT NULL DEFAULT 0,
    mails        integer NOT NULL DEFAULT 0,
    -- Why an operator suppressed it (bounced, complained).
    reason       text
);

CREATE INDEX subscriptions_pending ON subscriptions (created_at) WHERE state = 'pending';

-- One mail to one subscriber: an event's subscriber audience (a delivery
-- to `@subscribers`) expanded per address, or a confirmation. A separate
-- queue, sent at its own rate, so operator channels never wait behind it.
-- Unsubscribing deletes the subscription and, by cascade, these rows.
CREATE TABLE subscriber_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    subscription_id bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    subject         text NOT NULL,
    seq             bigint NOT NULL,
    -- 0: a confirmation (first); 1: a notice.
    priority        smallint NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    locked_until    timestamptz,
    last_error      text,
    done_at         timestamptz,
    UNIQUE (event_id, subscription_id)
);

CREATE INDEX subscriber_deliveries_due ON subscriber_deliveries (priority, due_at)
    WHERE state = 'pending';
CREATE INDEX subscriber_deliveries_order ON subscriber_deliveries (subscription_id, subject, seq)
    WHERE state = 'pending';
