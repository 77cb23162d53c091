package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditProof is the answer of GET /v1/audit/proof/{index}: an entry, a
// signed checkpoint, and the RFC 6962 inclusion proof linking them.
// Verify it with VerifyAuditProof and the log's public key alone.
//
// Leaf is the entry's canonical encoding, the bytes the tree commits to
// (docs/AUDIT.md): the proof is checked on the leaf, and the verified
// entry is the one decoded from it. Entry is the same entry as JSON, for
// reading; its detail may differ in bytes (JSON re-encoding), never in
// meaning.
type AuditProof struct {
	Index      int64               `json:"index"`
	Entry      daoguard.AuditEntry `json:"entry"`
	Leaf       []byte              `json:"leaf"`       // base64
	Checkpoint string              `json:"checkpoint"` // C2SP tlog-checkpoint, a signed note
	Proof      [][]byte            `json:"proof"`      // the audit path, leaf to root, base64 hashes
}

// AuditConsistency is the answer of GET /v1/audit/consistency?from=N[&to=M]:
// an RFC 6962 proof that the log of From entries is a prefix of the log
// of To entries (by default the size of Checkpoint, the latest, signed).
type AuditConsistency struct {
	From       int64    `json:"from"`
	To         int64    `json:"to"`
	Checkpoint string   `json:"checkpoint"`
	Proof      [][]byte `json:"proof"`
}

// Checkpoint is a verified checkpoint: the log's size and root hash, as
// signed by the key named Origin.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   [32]byte
	Note   []byte // the signed note, to keep and show to others
}

// ErrAuditProof is wrapped by the errors of the verify helpers: what the
// server sent does not prove what it claims.
var ErrAuditProof = errors.New("audit proof does not verify")

// AuditCheckpoint returns the latest signed checkpoint, unverified (see
// OpenCheckpoint).
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.Do(ctx, "GET", "/v1/audit/checkpoint", nil, nil, nil, &b)
}

// AuditProof fetches entry index with its inclusion proof, unverified
// (see VerifyAuditProof, or VerifyEntry for both steps).
func (c *Client) AuditProof(ctx context.Context, index int64) (*AuditProof, error) {
	var p AuditProof
	return &p, c.Do(ctx, "GET", "/v1/audit/proof/"+strconv.FormatInt(index, 10), nil, nil, nil, &p)
}

// AuditConsistency fetches the proof that the log of from entries is a
// prefix of the log of to entries (0: the latest checkpoint's),
// unverified (see VerifyConsistency).
func (c *Client) AuditConsistency(ctx context.Context, from, to int64) (*AuditConsistency, error) {
	q := url.Values{"from": {strconv.FormatInt(from, 10)}}
	if to != 0 {
		q.Set("to", strconv.FormatInt(to, 10))
	}
	var p AuditConsistency
	return &p, c.Do(ctx, "GET", "/v1/audit/consistency", q, nil, nil, &p)
}

// VerifyEntry fetches entry index and proves it is in the log: the
// checkpoint must be signed by the log's key (verifierKey, the contents of
// DIR/audit.pub), and the entry, hashed here, must be a leaf of the tree
// it signs. If trusted is a checkpoint verified earlier, the two must be
// of one history (a consistency proof between them), so the server cannot
// show two. It returns the entry and the checkpoint to trust from now on:
// the larger of the two.
func (c *Client) VerifyEntry(ctx context.Context, index int64, verifierKey string, trusted *Checkpoint) (*daoguard.AuditEntry, *Checkpoint, error) {
	p, err := c.AuditProof(ctx, index)
	if err != nil {
		return nil, nil, err
	}
	// The proof must be of the entry asked for: a real proof of another
	// entry proves nothing about this one.
	if p.Index != index {
		return nil, nil, fmt.Errorf("%w: asked for entry %d, got a proof of %d", ErrAuditProof, index, p.Index)
	}
	entry, cp, err := VerifyAuditProof(p, verifierKey)
	if err != nil {
		return nil, nil, err
	}
	if trusted != nil {
		// The proof's checkpoint and the trusted one must be of one
		// history: the smaller a prefix of the larger, proved between
		// exactly these two, whose roots the client holds signed.
		lo, hi := trusted, cp
		if cp.Size < trusted.Size {
			lo, hi = cp, trusted
		}
		if lo.Origin != hi.Origin {
			return nil, nil, fmt.Errorf("%w: checkpoint of %q, trusted one of %q", ErrAuditProof, cp.Origin, trusted.Origin)
		}
		if lo.Size == hi.Size {
			if lo.Root != hi.Root {
				return nil, nil, fmt.Errorf("%w: two checkpoints of %d entries with different roots: the log was rewritten", ErrAuditProof, lo.Size)
			}
		} else {
			cons, err := c.AuditConsistency(ctx, lo.Size, hi.Size)
			if err != nil {
				return nil, nil, err
			}
			proof, err := hashes(cons.Proof)
			if err != nil {
				return nil, nil, err
			}
			if err := tlog.CheckTree(proof, hi.Size, hi.Root, lo.Size, lo.Root); err != nil {
				return nil, nil, fmt.Errorf("%w: the log of %d entries does not extend the one of %d: it was rewritten", ErrAuditProof, hi.Size, lo.Size)
			}
		}
		cp = hi
	}
	return entry, cp, nil
}

// OpenCheckpoint verifies a signed checkpoint with the log's public key
// (verifierKey, a note verifier key: the contents of DIR/audit.pub) and
// parses it.
func OpenCheckpoint(msg []byte, verifierKey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	c, err := audit.OpenCheckpoint(msg, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuditProof, err)
	}
	return &Checkpoint{Origin: c.Origin, Size: c.Size, Root: c.Root, Note: bytes.Clone(msg)}, nil
}

// VerifyAuditProof checks p with the log's public key alone: the
// checkpoint's signature, and that p.Leaf is leaf p.Index of the
// checkpoint's tree (RFC 6962). It returns the entry decoded from the
// verified leaf, and the verified checkpoint.
func VerifyAuditProof(p *AuditProof, verifierKey string) (*daoguard.AuditEntry, *Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), verifierKey)
	if err != nil {
		return nil, nil, err
	}
	if p.Index < 0 || p.Index >= cp.Size {
		return nil, nil, fmt.Errorf("%w: entry %d is not in a checkpoint of %d entries", ErrAuditProof, p.Index, cp.Size)
	}
	proof, err := hashes(p.Proof)
	if err != nil {
		return nil, nil, err
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return nil, nil, fmt.Errorf("%w: entry %d is not in the signed tree of %d entries", ErrAuditProof, p.Index, cp.Size)
	}
	e, err := audit.ParseLeaf(p.Leaf)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the leaf of entry %d: %v", ErrAuditProof, p.Index, err)
	}
	if e.Seq != uint64(p.Index) {
		return nil, nil, fmt.Errorf("%w: the leaf at %d says it is entry %d", ErrAuditProof, p.Index, e.Seq)
	}
	return e, cp, nil
}

// VerifyConsistency checks that the checkpoint c carries, signed by the
// log's key, extends old: the log was only appended to since old. It
// returns the new checkpoint.
func VerifyConsistency(old Checkpoint, c *AuditConsistency, verifierKey string) (*Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(c.Checkpoint), verifierKey)
	if err != nil {
		return nil, err
	}
	if cp.Origin != old.Origin {
		return nil, fmt.Errorf("%w: checkpoint of %q, trusted one of %q", ErrAuditProof, cp.Origin, old.Origin)
	}
	if c.From != old.Size || cp.Size < old.Size {
		return nil, fmt.Errorf("%w: a proof from %d entries to %d, for a trusted checkpoint of %d", ErrAuditProof, c.From, cp.Size, old.Size)
	}
	proof, err := hashes(c.Proof)
	if err != nil {
		return nil, err
	}
	if err := tlog.CheckTree(proof, cp.Size, cp.Root, old.Size, old.Root); err != nil {
		return nil, fmt.Errorf("%w: the log of %d entries does not extend the trusted one of %d: it was rewritten", ErrAuditProof, cp.Size, old.Size)
	}
	return cp, nil
}

func hashes(bs [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("%w: proof hash %d is %d bytes", ErrAuditProof, i, len(b))
		}
		out[i] = tlog.Hash(b)
	}
	return out, nil
}
