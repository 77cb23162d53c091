-- The EVM executor's keys (sealed) and the transactions it signed,
-- recorded before broadcast.
CREATE TABLE signers (
	org_id     TEXT NOT NULL REFERENCES orgs(id),
	name       TEXT NOT NULL,
	address    TEXT NOT NULL,
	sealed_key BLOB NOT NULL,
	created    INTEGER NOT NULL,
	PRIMARY KEY (org_id, name)
);

CREATE TABLE broadcasts (
	attempt   TEXT PRIMARY KEY,
	action_id TEXT NOT NULL,
	chain_id  INTEGER NOT NULL,
	sender    TEXT NOT NULL,
	nonce     INTEGER NOT NULL,
	tx_hash   TEXT NOT NULL,
	raw       BLOB NOT NULL,
	created   INTEGER NOT NULL,
	UNIQUE (chain_id, sender, nonce)
);
