package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/daoguard/daoguard"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the log's size and root hash, in
// the C2SP tlog-checkpoint format: the origin (the signing key's name,
// "daoguard/<org id>"), the size in decimal, the root in base64, one per
// line, signed as a note (golang.org/x/mod/sumdb/note, Ed25519).
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text is the checkpoint's body, the text the note signs.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// SignCheckpoint signs c with the log's key; c.Origin must be the key's
// name, so that a verifier knows which log the checkpoint speaks for.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if c.Origin != s.Name() {
		return nil, fmt.Errorf("audit: checkpoint of %q signed by the key of %q", c.Origin, s.Name())
	}
	return note.Sign(&note.Note{Text: c.Text()}, s)
}

// OpenCheckpoint verifies a signed checkpoint with the log's public key
// and parses it. Extension lines after the root are allowed (C2SP) and
// ignored; anything else malformed is an error.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	var uv *note.UnknownVerifierError
	if errors.As(err, &uv) {
		// Say which key signed it: a verifier given the wrong key file
		// sees that at once, rather than suspecting a forgery.
		return Checkpoint{}, fmt.Errorf("checkpoint signature: signed by key %s+%08x, not by the key given, %s+%08x", uv.Name, uv.KeyHash, v.Name(), v.KeyHash())
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != v.Name() {
		return Checkpoint{}, errors.New("checkpoint: not origin, size and root hash, one per line, for this log")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: root hash %q", lines[2])
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: tlog.Hash(root)}, nil
}

// LatestCheckpoint reads the latest stored checkpoint and verifies it with
// the log's key: the zero Checkpoint and a nil note if none is stored, a
// *TamperError if it is not the log's.
func LatestCheckpoint(ctx context.Context, tx daoguard.Tx, v note.Verifier) (Checkpoint, []byte, error) {
	msg, err := tx.LatestCheckpoint(ctx)
	if daoguard.IsNotFound(err) {
		return Checkpoint{}, nil, nil
	} else if err != nil {
		return Checkpoint{}, nil, err
	}
	c, err := OpenCheckpoint(msg, v)
	if err != nil {
		return Checkpoint{}, nil, &TamperError{Index: -1, Why: "the latest checkpoint does not verify with the log's key: " + err.Error()}
	}
	return c, msg, nil
}

// Tampered turns a *TamperError in err into AUDIT_TAMPERED, naming the
// first bad entry when one can be named, with hint (what to do); other
// errors pass unchanged.
func Tampered(err error, hint string) error {
	var te *TamperError
	if !errors.As(err, &te) {
		return err
	}
	where := ""
	if te.Index >= 0 {
		where = fmt.Sprintf("first bad entry %d: ", te.Index)
	}
	return &daoguard.Error{Code: daoguard.CodeAuditTampered, Message: "the audit log is tampered: " + where + te.Why, Hint: hint}
}

// storeHashes reads stored tree hashes by index from a transaction.
func storeHashes(ctx context.Context, tx daoguard.Tx) tlog.HashReader {
	return hashReader(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			hs, err := tx.AuditHashes(ctx, x, 1)
			if err != nil {
				return nil, err
			}
			if len(hs) == 0 || hs[0].Index != x {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = tlog.Hash(hs[0].Hash)
		}
		return out, nil
	})
}

// IssueCheckpoint signs a checkpoint of the committed log as it is now,
// once the log is proved to extend the latest checkpoint (an RFC 6962
// consistency proof from the stored tree): a log rewritten since is never
// signed over. It returns the checkpoint and its signed note: the latest
// unchanged when the log has not grown, none (a nil note) for an empty log.
func IssueCheckpoint(ctx context.Context, st daoguard.Store, s note.Signer, v note.Verifier) (Checkpoint, []byte, error) {
	var latest, next Checkpoint
	var latestMsg []byte
	var have bool
	err := st.View(ctx, func(tx daoguard.Tx) error {
		var err error
		if latest, latestMsg, err = LatestCheckpoint(ctx, tx, v); err != nil {
			return err
		}
		have = latestMsg != nil
		size, err := tx.AuditHashCount(ctx)
		if err != nil {
			return err
		}
		n := treeSize(size)
		if n < 0 {
			return &TamperError{Index: -1, Why: fmt.Sprintf("%d stored hashes is no tree's count", size)}
		}
		r := storeHashes(ctx, tx)
		root, err := tlog.TreeHash(n, r)
		if err != nil {
			return err
		}
		next = Checkpoint{Origin: s.Name(), Size: n, Root: root}
		if !have {
			return nil
		}
		if n < latest.Size {
			return &TamperError{Index: n, Why: fmt.Sprintf("the log has %d entries, but checkpoint %d was signed: entries were removed", n, latest.Size)}
		}
		proof, err := tlog.ProveTree(n, latest.Size, r)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(proof, n, root, latest.Size, latest.Root); err != nil {
			return &TamperError{Index: -1, Why: "the log is not an extension of the latest checkpoint: it was rewritten"}
		}
		return nil
	})
	// An empty log has nothing to sign (and a checkpoint of size 0 could
	// not be proved consistent with the next one).
	if err != nil || next.Size == 0 || have && next.Size == latest.Size {
		return latest, latestMsg, err
	}
	msg, err := SignCheckpoint(next, s)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	// Another issuer may have signed meanwhile: a checkpoint per size.
	err = st.Update(ctx, func(tx daoguard.Tx) error { return tx.AddCheckpoint(ctx, next.Size, msg) })
	if daoguard.ErrorCode(err) == daoguard.CodeConflict {
		err = nil
	}
	return next, msg, err
}

// treeSize inverts tlog.StoredHashCount: the number of leaves whose tree
// stores count hashes, or -1 if no tree does.
func treeSize(count int64) int64 {
	lo, hi := int64(0), count
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if tlog.StoredHashCount(mid) <= count {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if tlog.StoredHashCount(lo) != count {
		return -1
	}
	return lo
}

// checkCheckpoint checks the latest checkpoint against a verified tree of
// size entries: the checkpoint must be signed by the log's key, no larger
// than the log, and its root the root the stored tree had at its size.
func checkCheckpoint(ctx context.Context, tx daoguard.Tx, v note.Verifier, size int64) (*Checkpoint, error) {
	c, msg, err := LatestCheckpoint(ctx, tx, v)
	if err != nil || msg == nil {
		return nil, err
	}
	if c.Size > size {
		return nil, &TamperError{Index: size, Why: fmt.Sprintf("checkpoint %d was signed, the log has %d entries: entries were cut from its tail", c.Size, size)}
	}
	root, err := tlog.TreeHash(c.Size, storeHashes(ctx, tx))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root[:], c.Root[:]) {
		return nil, &TamperError{Index: -1, Why: fmt.Sprintf("the first %d entries are not those checkpoint %d was signed over: the log was rewritten", c.Size, c.Size)}
	}
	return &c, nil
}

// InclusionProof proves that entry index is in the tree of size entries:
// the RFC 6962 audit path, read from the stored tree.
func InclusionProof(ctx context.Context, tx daoguard.Tx, index, size int64) (tlog.RecordProof, error) {
	return tlog.ProveRecord(size, index, storeHashes(ctx, tx))
}

// ConsistencyProof proves that the tree of oldSize entries is a prefix of
// the tree of size entries (RFC 6962), read from the stored tree.
func ConsistencyProof(ctx context.Context, tx daoguard.Tx, oldSize, size int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(size, oldSize, storeHashes(ctx, tx))
}
