-- The audit log's Merkle tree (RFC 6962, golang.org/x/mod/sumdb/tlog's
-- stored-hash layout): written in the same transaction as the entries it
-- hashes, and append-only like them.
CREATE TABLE audit_hash (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TRIGGER audit_hash_no_update BEFORE UPDATE ON audit_hash
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_hash_no_delete BEFORE DELETE ON audit_hash
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- Set by the store once the tree holds every entry written before it (the
-- upgrade backfill runs once, never again: deleting hashes later must not
-- make the store rebuild them from tampered entries).
INSERT INTO meta (key, value) VALUES ('audit_tree', 'pending');

-- Signed checkpoints of the log (C2SP tlog-checkpoint notes), one per size.
CREATE TABLE audit_checkpoint (
	size    INTEGER PRIMARY KEY,
	note    TEXT NOT NULL,
	created INTEGER NOT NULL
);
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- Positions are 0, 1, 2, …: a row at a negative one would sit outside
-- what verification reads.
CREATE TRIGGER audit_seq_not_negative BEFORE INSERT ON audit WHEN NEW.seq < 0
BEGIN SELECT RAISE(ABORT, 'audit positions start at 0'); END;
