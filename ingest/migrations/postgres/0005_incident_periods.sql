-- A reopened incident's duration counts only its open periods: when its
-- current period began, and how long it was open before.
ALTER TABLE incidents ADD COLUMN reopened_at timestamptz;
ALTER TABLE incidents ADD COLUMN earlier_open_ms bigint NOT NULL DEFAULT 0 CHECK (earlier_open_ms >= 0);
