-- The EVM executor's keys (sealed) and the transactions it signed,
-- recorded before broadcast. (chain_id, sender, nonce) is unique: two
-- gateways can never both sign a sender's next nonce.
CREATE TABLE signers (
	org_id     text NOT NULL REFERENCES orgs(id),
	name       text NOT NULL,
	address    text NOT NULL,
	sealed_key bytea NOT NULL,
	created    timestamptz NOT NULL,
	PRIMARY KEY (org_id, name)
);

CREATE TABLE broadcasts (
	attempt   text PRIMARY KEY,
	action_id text NOT NULL,
	chain_id  bigint NOT NULL,
	sender    text NOT NULL,
	nonce     bigint NOT NULL,
	tx_hash   text NOT NULL,
	raw       bytea NOT NULL,
	created   timestamptz NOT NULL,
	UNIQUE (chain_id, sender, nonce)
);
