-- Authentication: credential rotation and last use, and the nonce store.
ALTER TABLE credentials ADD COLUMN replaced_by text NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN last_used timestamptz;
CREATE INDEX credentials_principal ON credentials (principal_id, created);

-- One row per nonce a key has used; the primary key makes the insert the
-- atomic replay check across every gateway sharing this database.
CREATE TABLE nonces (
	key_id     text NOT NULL,
	nonce      text NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (key_id, nonce)
);
CREATE INDEX nonces_expires ON nonces (expires_at);
CREATE INDEX audit_action ON audit (action_id, seq);
