-- An action may hold funds of more than one account: its own, and another
-- account's whose tokens it pulls under that account's allowance
-- (transferFrom). A reservation is one per action, account and asset.
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations ADD PRIMARY KEY (action_id, account, asset);
