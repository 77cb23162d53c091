-- Authentication: credential rotation and last use, and the nonce store.
ALTER TABLE credentials ADD COLUMN replaced_by TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
CREATE INDEX credentials_principal ON credentials (principal_id, created);

-- One row per nonce a key has used; the primary key makes the insert the
-- atomic replay check. created (Unix seconds, signed by the client, so a
-- replay repeats it) leads the key: new rows land at the end of the B-tree
-- instead of on random pages, and the purge is a range of the key.
CREATE TABLE nonces (
	created    INTEGER NOT NULL,
	key_id     TEXT NOT NULL,
	nonce      TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (created, key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX audit_action ON audit (action_id, seq);
