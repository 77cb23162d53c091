-- Authentication: credential rotation and last use, and the nonce store.
ALTER TABLE credentials ADD COLUMN replaced_by text NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN last_used timestamptz;
CREATE INDEX credentials_principal ON credentials (principal_id, created);

-- One row per nonce a key has used; the primary key makes the insert the
-- atomic replay check across every gateway sharing this database.
-- created (Unix seconds, signed, so a replay repeats it) leads the key:
-- inserts land at the end of the index and the purge is a range of it.
CREATE TABLE nonces (
	created    bigint NOT NULL,
	key_id     text NOT NULL,
	nonce      text NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (created, key_id, nonce)
);
CREATE INDEX audit_action ON audit (action_id, seq);
