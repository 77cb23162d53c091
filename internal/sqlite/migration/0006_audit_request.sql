-- Who acted, precisely: the credential that signed the request, and the
-- SHA-256 of the request's RFC 9421 signature base, which the client can
-- recompute from the request it sent. Empty for entries daoguard writes on
-- its own (execution, expiry) and for entries from before this migration,
-- whose leaves keep their v1 encoding.
ALTER TABLE audit ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN request_digest TEXT NOT NULL DEFAULT '';
