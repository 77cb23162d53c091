-- An action may hold funds of more than one account (its own, and another
-- account's whose tokens it pulls under that account's allowance), and an
-- approval holds the allowance it grants each spender until the allowance
-- is spent or revoked: a reservation is one per action, account, asset and
-- spender ('' for a payment).
ALTER TABLE reservations ADD COLUMN spender text NOT NULL DEFAULT '';
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations ADD PRIMARY KEY (action_id, account, asset, spender);
CREATE INDEX reservations_allowances ON reservations (org_id) WHERE spender <> '';
