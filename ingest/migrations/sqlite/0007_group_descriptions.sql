-- A group's description (from the YAML), on each of its checks: the page shows it under the group.
ALTER TABLE checks ADD COLUMN group_description TEXT;
