-- Until when a check's status cannot change without a new result (a location falling silent,
-- or an interval with nothing heard): the leader's tick passes the check over until then. NULL
-- (every row before this migration) is due at once.
ALTER TABLE checks ADD COLUMN quiet_until timestamptz;
