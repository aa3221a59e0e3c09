-- How many locations a check asks for, so that ingest decides which agents
-- are assigned to it (and whose votes count) from the fleet it has heard
-- from, never from what one agent reports. 0 means `all`; NULL means not
-- known (a placeholder, until catalog sync adopts it).
ALTER TABLE checks ADD COLUMN locations INTEGER CHECK (locations >= 0);

-- What the public page calls an agent's location (`--location-label`); the
-- page shows it, or the zone, never the agent's name (a node name carries
-- internal addresses).
ALTER TABLE agents ADD COLUMN label TEXT NOT NULL DEFAULT '';
