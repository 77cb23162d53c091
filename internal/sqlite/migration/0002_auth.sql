-- Authentication: credential rotation and last use, and the nonce store.
ALTER TABLE credentials ADD COLUMN replaced_by TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
CREATE INDEX credentials_principal ON credentials (principal_id, created);

-- One row per nonce a key has used; the primary key makes the insert the
-- atomic replay check.
CREATE TABLE nonces (
	key_id     TEXT NOT NULL,
	nonce      TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_expires ON nonces (expires_at);
CREATE INDEX audit_action ON audit (action_id, seq);
