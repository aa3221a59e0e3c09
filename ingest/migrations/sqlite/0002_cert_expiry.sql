-- The earliest certificate expiry (leaf or chain) in a check's newest TLS
-- facts, for the dashboard's check page.
ALTER TABLE checks ADD COLUMN cert_not_after INTEGER;
