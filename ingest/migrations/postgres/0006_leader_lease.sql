-- The leader's lease. It replaces the session-level advisory lock, which a
-- half-open connection kept alive on the server indefinitely, so that no
-- replica could lead again. A lease ends by itself when its holder stops
-- renewing it; leader transactions check it under FOR SHARE, so a taker's
-- UPDATE waits for the last of them to end.
CREATE TABLE leader_lease (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);
