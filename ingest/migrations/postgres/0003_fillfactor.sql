-- Rows every write rewrites (a pair per result, a check per write, a minute
-- rollup per message) leave room in their pages, so PostgreSQL updates them
-- in place (HOT): no new index entries per update, and less to vacuum.
-- Applies to pages written from now on.
ALTER TABLE pairs SET (fillfactor = 50);
ALTER TABLE checks SET (fillfactor = 50);
ALTER TABLE rollups SET (fillfactor = 70);
