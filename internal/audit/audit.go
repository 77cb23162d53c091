// Package audit makes the audit log verifiable: each entry is a leaf of an
// RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog, as the Go checksum
// database keeps its log), whose hashes the stores write in the same
// transaction as the entries themselves. Anyone holding the entries and
// the hashes can recompute the tree and find the first entry that was
// changed, removed or moved.
//
// Apart from VerifyStore, which reads a store through its interface, the
// package does no I/O: the stores pass what they read.
package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/daoguard/daoguard"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The version prefixes every leaf: a later encoding gets a new version,
// and a verifier never mistakes one for the other. v2 adds the request's
// key id and digest; an entry without them (daoguard's own, and every
// entry from before v2) keeps v1, so that old trees still verify.
const (
	leafVersion  = "daoguard-audit-v1\n"
	leafVersion2 = "daoguard-audit-v2\n"
)

// Leaf is the canonical encoding of an entry: the bytes the tree commits
// to. Every field is length-prefixed, so no two entries share an encoding
// (a field cannot borrow bytes from its neighbour); the time is in UNIX
// microseconds, the precision both stores keep; the detail is its stored
// bytes, exactly.
func Leaf(e *daoguard.AuditEntry) []byte {
	b := make([]byte, 0, len(leafVersion)+16+len(e.OrgID)+len(e.ActorKind)+len(e.ActorID)+len(e.KeyID)+len(e.RequestDigest)+len(e.ActionID)+len(e.Event)+len(e.Detail)+8*binary.MaxVarintLen64)
	fields := []string{e.OrgID, e.ActorKind, e.ActorID, e.ActionID, e.Event}
	if e.KeyID == "" && e.RequestDigest == "" {
		b = append(b, leafVersion...)
	} else {
		b = append(b, leafVersion2...)
		fields = []string{e.OrgID, e.ActorKind, e.ActorID, e.KeyID, e.RequestDigest, e.ActionID, e.Event}
	}
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Detail)))
	return append(b, e.Detail...)
}

// RightEdge lists the stored-hash indexes of the complete subtrees on the
// right edge of a tree of n leaves, largest first: all that appending leaf
// n (and the ones after it) reads of the tree so far.
func RightEdge(n int64) []int64 {
	var out []int64
	start := int64(0)
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return out
}

// Append computes the hashes to store for entries, which are the leaves
// first, first+1, … of the tree; edge holds the hashes of RightEdge(first),
// in that order. It returns the new hashes with their stored-hash indexes,
// in index order: from first's StoredHashIndex(0, first) on, contiguous.
func Append(first int64, edge []tlog.Hash, entries []*daoguard.AuditEntry) (start int64, hashes []tlog.Hash, err error) {
	idx := RightEdge(first)
	if len(idx) != len(edge) {
		return 0, nil, fmt.Errorf("audit: %d right-edge hashes for a tree of %d, want %d", len(edge), first, len(idx))
	}
	known := make(map[int64]tlog.Hash, len(idx)+2*len(entries))
	for i, x := range idx {
		known[x] = edge[i]
	}
	start = tlog.StoredHashIndex(0, first)
	r := hashReader(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			h, ok := known[x]
			if !ok {
				return nil, fmt.Errorf("audit: hash %d is not on the right edge", x)
			}
			out[i] = h
		}
		return out, nil
	})
	for i, e := range entries {
		n := first + int64(i)
		if e.Seq != uint64(n) {
			return 0, nil, fmt.Errorf("audit: entry %d is at position %d", e.Seq, n)
		}
		hs, err := tlog.StoredHashes(n, Leaf(e), r)
		if err != nil {
			return 0, nil, err
		}
		base := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			known[base+int64(j)] = h
		}
		hashes = append(hashes, hs...)
	}
	return start, hashes, nil
}

type hashReader func([]int64) ([]tlog.Hash, error)

func (f hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) { return f(indexes) }

// ErrTampered is wrapped by the error Verify returns for a log whose
// entries and stored hashes disagree.
var ErrTampered = errors.New("audit log tampered")

// TamperError names the first entry at which the log stops verifying.
type TamperError struct {
	Index int64  // the first bad entry; -1 when no single entry can be named (a checkpoint's root disagrees with a log consistent in itself)
	Why   string // what is wrong there
}

func (e *TamperError) Error() string {
	if e.Index < 0 {
		return "audit log: " + e.Why
	}
	return fmt.Sprintf("audit log: entry %d: %s", e.Index, e.Why)
}

func (e *TamperError) Unwrap() error { return ErrTampered }

// Verifier recomputes the tree entry by entry and compares every hash with
// the stored one. Feed it the entries in log order with Next, then call
// Done with the number of stored hashes; the first disagreement is a
// *TamperError. It keeps only the right edge of the tree (one hash per
// level), as a binary counter: memory O(log n), no lookups.
type Verifier struct {
	n     int64
	edge  []node // the right edge: complete subtrees, largest first
	bad   error
	check func(index int64) (tlog.Hash, error) // the stored hash at index
}

type node struct {
	level int
	hash  tlog.Hash
}

// NewVerifier verifies against stored, which returns the stored hash at an
// index (an error if there is none). With stored nil it only computes the
// tree, for a log whose root alone is known (an exported log).
func NewVerifier(stored func(index int64) (tlog.Hash, error)) *Verifier {
	return &Verifier{check: stored}
}

// Next checks the next entry. It returns the verification error, once the
// log has failed, for every later call too.
func (v *Verifier) Next(e *daoguard.AuditEntry) error {
	if v.bad != nil {
		return v.bad
	}
	return v.next(e.Seq, Leaf(e))
}

// next checks the next leaf, which says it is entry seq.
func (v *Verifier) next(seq uint64, leaf []byte) error {
	if v.bad != nil {
		return v.bad
	}
	if seq != uint64(v.n) {
		v.bad = &TamperError{Index: v.n, Why: fmt.Sprintf("the entry here says it is entry %d: entries are missing or moved", seq)}
		return v.bad
	}
	// The hashes leaf n adds, in tlog's stored order: the leaf, then each
	// subtree it completes (RFC 6962's interior nodes).
	idx := tlog.StoredHashIndex(0, v.n)
	h := tlog.RecordHash(leaf)
	if err := v.compare(idx, h); err != nil {
		return err
	}
	v.edge = append(v.edge, node{0, h})
	for k := len(v.edge); k >= 2 && v.edge[k-1].level == v.edge[k-2].level; k = len(v.edge) {
		idx++
		m := node{v.edge[k-2].level + 1, tlog.NodeHash(v.edge[k-2].hash, v.edge[k-1].hash)}
		if err := v.compare(idx, m.hash); err != nil {
			return err
		}
		v.edge = append(v.edge[:k-2], m)
	}
	v.n++
	return nil
}

func (v *Verifier) compare(index int64, h tlog.Hash) error {
	if v.check == nil { // an exported log: no stored hashes, only a root
		return nil
	}
	got, err := v.check(index)
	if err != nil {
		v.bad = &TamperError{Index: v.n, Why: "its stored hash is missing: " + err.Error()}
		return v.bad
	}
	if got != h {
		v.bad = &TamperError{Index: v.n, Why: "it does not hash to the stored tree: its content was changed"}
		return v.bad
	}
	return nil
}

// Done ends the verification: the entries seen must account for every
// stored hash. It returns the tree's size and root hash (RFC 6962: the
// right edge folded from the right).
func (v *Verifier) Done(storedHashes int64) (int64, tlog.Hash, error) {
	if v.bad != nil {
		return 0, tlog.Hash{}, v.bad
	}
	if want := tlog.StoredHashCount(v.n); storedHashes != want {
		return 0, tlog.Hash{}, &TamperError{Index: v.n, Why: fmt.Sprintf("%d stored hashes for %d entries (want %d): entries after %d were removed", storedHashes, v.n, want, v.n-1)}
	}
	n, root := v.Root()
	return n, root, nil
}

// Root returns the size and root hash of the tree of the entries seen so
// far (RFC 6962: the right edge folded from the right).
func (v *Verifier) Root() (int64, tlog.Hash) {
	var root tlog.Hash // the empty tree's
	if len(v.edge) > 0 {
		root = v.edge[len(v.edge)-1].hash
		for i := len(v.edge) - 2; i >= 0; i-- {
			root = tlog.NodeHash(v.edge[i].hash, root)
		}
	} else {
		root, _ = tlog.TreeHash(0, nil)
	}
	return v.n, root
}

// pageSize is how many entries or hashes VerifyStore reads at once.
const pageSize = 10_000

// VerifyStore verifies the whole log of a store in one read transaction:
// every entry against the stored tree, the tree's size against the
// entries, and, with the log's public key, the latest signed checkpoint
// against the tree (which finds a tail cut off with its hashes). It
// returns the tree's size and root hash, and the checkpoint checked (nil
// if none); a log that does not verify is a *TamperError naming the first
// bad entry.
func VerifyStore(ctx context.Context, st daoguard.Store, v note.Verifier) (size int64, root tlog.Hash, cp *Checkpoint, err error) {
	return verifyStore(ctx, st, v, nil)
}

// verifyStore is VerifyStore, handing each verified entry to each (if not
// nil).
func verifyStore(ctx context.Context, st daoguard.Store, v note.Verifier, each func(*daoguard.AuditEntry) error) (size int64, root tlog.Hash, cp *Checkpoint, err error) {
	err = st.View(ctx, func(tx daoguard.Tx) error {
		var buf []daoguard.AuditHash
		next := int64(0) // the next hash index to read
		ver := NewVerifier(func(index int64) (tlog.Hash, error) {
			for len(buf) == 0 || buf[len(buf)-1].Index < index {
				page, err := tx.AuditHashes(ctx, next, pageSize)
				if err != nil {
					return tlog.Hash{}, err
				}
				if len(page) == 0 {
					return tlog.Hash{}, fmt.Errorf("no hash %d", index)
				}
				buf, next = page, page[len(page)-1].Index+1
			}
			for len(buf) > 0 && buf[0].Index < index {
				buf = buf[1:]
			}
			if len(buf) == 0 || buf[0].Index != index {
				return tlog.Hash{}, fmt.Errorf("no hash %d", index)
			}
			return tlog.Hash(buf[0].Hash), nil
		})
		for from := uint64(0); ; {
			page, err := tx.AuditEntries(ctx, from, pageSize) // the store may return fewer
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for i := range page {
				if err := ver.Next(&page[i]); err != nil {
					return err
				}
				if each != nil {
					if err := each(&page[i]); err != nil {
						return err
					}
				}
			}
			from = page[len(page)-1].Seq + 1
		}
		count, err := tx.AuditHashCount(ctx)
		if err != nil {
			return err
		}
		if size, root, err = ver.Done(count); err != nil || v == nil {
			return err
		}
		cp, err = checkCheckpoint(ctx, tx, v, size)
		return err
	})
	return size, root, cp, err
}

// Backfill writes the tree of a log whose entries predate it (a store
// upgraded from before the tree): when no hash is stored yet, it hashes
// every entry in log order and passes the hashes to insert, from index 0
// on, contiguous. The store runs it once, at the upgrade, in a write
// transaction that holds the log's lock, so that no entry is appended
// meanwhile; never again after, or deleting every hash would make the
// store rebuild the tree from whatever the entries then say.
func Backfill(ctx context.Context, tx daoguard.Tx, insert func(start int64, hashes []tlog.Hash) error) error {
	count, err := tx.AuditHashCount(ctx)
	if err != nil || count > 0 {
		return err
	}
	known := map[int64]tlog.Hash{}
	n := int64(0)
	for {
		page, err := tx.AuditEntries(ctx, uint64(n), pageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		batch := make([]*daoguard.AuditEntry, len(page))
		for i := range page {
			batch[i] = &page[i]
		}
		edge := make([]tlog.Hash, 0, 64)
		for _, x := range RightEdge(n) {
			edge = append(edge, known[x])
		}
		start, hashes, err := Append(n, edge, batch)
		if err != nil {
			return fmt.Errorf("audit tree of the existing log: %w", err)
		}
		if err := insert(start, hashes); err != nil {
			return err
		}
		n += int64(len(page))
		// The next page reads the right edge of the tree so far: hashes of
		// this page, or of earlier ones still on the edge.
		next := map[int64]tlog.Hash{}
		for _, x := range RightEdge(n) {
			if x >= start {
				next[x] = hashes[x-start]
			} else {
				next[x] = known[x]
			}
		}
		known = next
	}
}
