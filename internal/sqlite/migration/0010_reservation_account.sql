-- An action may hold funds of more than one account (its own, and another
-- account's whose tokens it pulls under that account's allowance), and an
-- approval holds the allowance it grants each spender until the allowance
-- is spent or revoked: a reservation is one per action, account, asset and
-- spender ('' for a payment). SQLite cannot change a primary key in
-- place: the table is rebuilt.
CREATE TABLE reservations_new (
	org_id    TEXT NOT NULL REFERENCES orgs(id),
	action_id TEXT NOT NULL,
	account   TEXT NOT NULL,
	asset     TEXT NOT NULL,
	spender   TEXT NOT NULL DEFAULT '',
	amount    TEXT NOT NULL,
	usd       INTEGER NOT NULL,
	PRIMARY KEY (action_id, account, asset, spender)
);
INSERT INTO reservations_new (org_id, action_id, account, asset, amount, usd) SELECT org_id, action_id, account, asset, amount, usd FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
CREATE INDEX reservations_allowances ON reservations (org_id) WHERE spender <> '';
