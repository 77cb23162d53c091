-- An action may hold funds of more than one account: its own, and another
-- account's whose tokens it pulls under that account's allowance
-- (transferFrom). A reservation is one per action, account and asset.
-- SQLite cannot change a primary key in place: the table is rebuilt.
CREATE TABLE reservations_new (
	org_id    TEXT NOT NULL REFERENCES orgs(id),
	action_id TEXT NOT NULL,
	account   TEXT NOT NULL,
	asset     TEXT NOT NULL,
	amount    TEXT NOT NULL,
	usd       INTEGER NOT NULL,
	PRIMARY KEY (action_id, account, asset)
);
INSERT INTO reservations_new SELECT org_id, action_id, account, asset, amount, usd FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
