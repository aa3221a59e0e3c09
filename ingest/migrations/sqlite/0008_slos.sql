-- A check's service level objective (from the YAML): the target in parts per million and the
-- rolling window in days; both NULL when it has none. The page, the API and the leader's gauges read them.
ALTER TABLE checks ADD COLUMN slo_target_ppm INTEGER;
ALTER TABLE checks ADD COLUMN slo_window_days INTEGER;
