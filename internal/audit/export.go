package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/daoguard/daoguard"
	"golang.org/x/mod/sumdb/note"
)

// An exported log is the leaves themselves, the bytes the tree commits
// to: exportMagic, then each leaf as a uvarint length and the leaf, in log
// order. Nothing in it needs trusting: a verifier hashes the leaves into
// the tree and compares the root with a signed checkpoint; a reader
// decodes each leaf back into its entry (ParseLeaf).
const exportMagic = "daoguard-audit-export-v1\n"

// maxLeaf bounds one leaf in an export: far above any entry daoguard
// writes (a request body is at most a few MiB), far below what would
// exhaust memory.
const maxLeaf = 16 << 20

// ExportStore verifies the store's whole log, as VerifyStore does, and
// writes its first size entries to w as an exported log; a log that does
// not verify is not exported (a *TamperError). It returns the number of
// entries written.
func ExportStore(ctx context.Context, st daoguard.Store, v note.Verifier, size int64, w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.WriteString(exportMagic); err != nil {
		return 0, err
	}
	var n int64
	var lb []byte
	_, _, _, err := verifyStore(ctx, st, v, func(e *daoguard.AuditEntry) error {
		if int64(e.Seq) >= size {
			return nil
		}
		leaf := Leaf(e)
		lb = binary.AppendUvarint(lb[:0], uint64(len(leaf)))
		if _, err := bw.Write(lb); err != nil {
			return err
		}
		if _, err := bw.Write(leaf); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if n != size {
		return n, fmt.Errorf("audit export: the log has %d entries, not %d", n, size)
	}
	return n, bw.Flush()
}

// ErrNotExport: the file is not an exported log (of this version).
var ErrNotExport = fmt.Errorf("not a daoguard audit export: it must begin with %q", exportMagic)

// ReadExport reads an exported log, handing each leaf to fn in log order;
// the leaf's bytes are valid only during the call. A malformed file is an
// error naming the entry where it breaks.
func ReadExport(r io.Reader, fn func(index int64, leaf []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != exportMagic {
		return ErrNotExport
	}
	var buf []byte
	for i := int64(0); ; i++ {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("entry %d: its length: %w", i, readErr(err))
		}
		if n > maxLeaf {
			return fmt.Errorf("entry %d: a leaf of %d bytes (at most %d)", i, n, maxLeaf)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("entry %d: %w", i, readErr(err))
		}
		if err := fn(i, buf); err != nil {
			return err
		}
	}
}

// ReadError is a failure to read an export (not something wrong in it).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading the export: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// readErr: an export that ends inside an entry was cut; any other error
// is the reader's own.
func readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return io.ErrUnexpectedEOF
	}
	return &ReadError{err}
}

// VerifyExport verifies an exported log against a signed checkpoint (msg,
// checked with the log's public key): every leaf must be well formed and
// at its position, and the first cp.Size leaves must hash to the
// checkpoint's root. It returns the number of entries in the file (those
// past cp.Size are well formed but not covered by the checkpoint) and the
// checkpoint. A log that does not verify is a *TamperError; with only a
// root to compare, a changed entry cannot be named, only the range.
func VerifyExport(r io.Reader, msg []byte, v note.Verifier) (int64, Checkpoint, error) {
	cp, err := OpenCheckpoint(msg, v)
	if err != nil {
		return 0, Checkpoint{}, &TamperError{Index: -1, Why: "the checkpoint does not verify with the log's key: " + err.Error()}
	}
	ver := NewVerifier(nil)
	checked := cp.Size == 0
	check := func() error {
		if _, root := ver.Root(); root != cp.Root {
			return &TamperError{Index: -1, Why: fmt.Sprintf("entries 0 to %d do not hash to the root checkpoint %d was signed over: one of them was changed, or the export is of another log", cp.Size-1, cp.Size)}
		}
		checked = true
		return nil
	}
	err = ReadExport(r, func(i int64, leaf []byte) error {
		seq, err := checkLeaf(leaf)
		if err != nil {
			return &TamperError{Index: i, Why: "malformed: " + err.Error()}
		}
		if err := ver.next(seq, leaf); err != nil {
			return err
		}
		if i+1 == cp.Size {
			return check()
		}
		return nil
	})
	n, _ := ver.Root()
	var te *TamperError
	if errors.As(err, &te) || errors.Is(err, ErrNotExport) || errors.As(err, new(*ReadError)) {
		return n, cp, err
	} else if err != nil {
		return n, cp, &TamperError{Index: n, Why: err.Error()}
	}
	if !checked {
		return n, cp, &TamperError{Index: n, Why: fmt.Sprintf("the export ends after %d entries, the checkpoint covers %d: entries were cut from its tail", n, cp.Size)}
	}
	return n, cp, nil
}

// leafHeader is the fixed part of a leaf: the version, seq and time.
const leafHeader = len(leafVersion) + 16

// checkLeaf checks that b is a canonical leaf, without allocating, and
// returns its seq.
func checkLeaf(b []byte) (uint64, error) {
	var f leafFields
	if err := walkLeaf(b, &f); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[len(leafVersion):]), nil
}

// leafFields are a leaf's variable fields, in the order of the v2
// encoding (v1 has no key and digest).
type leafFields struct {
	org, actorKind, actor, key, digest, action, event, detail []byte
}

// walkLeaf checks the structure of leaf b and points f's fields into it.
func walkLeaf(b []byte, f *leafFields) error {
	if len(b) < leafHeader {
		return errors.New("too short for a leaf")
	}
	var fs []*[]byte
	switch string(b[:len(leafVersion)]) {
	case leafVersion:
		fs = []*[]byte{&f.org, &f.actorKind, &f.actor, &f.action, &f.event, &f.detail}
	case leafVersion2:
		fs = []*[]byte{&f.org, &f.actorKind, &f.actor, &f.key, &f.digest, &f.action, &f.event, &f.detail}
	default:
		return errors.New("not a daoguard-audit-v1 or v2 leaf")
	}
	rest := b[leafHeader:]
	for i, p := range fs {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return fmt.Errorf("field %d: bad length", i)
		}
		// Canonical: the shortest varint (Leaf writes no other), so that
		// one entry has one leaf.
		if k != uvarintLen(n) {
			return fmt.Errorf("field %d: length not minimally encoded", i)
		}
		rest = rest[k:]
		if n > uint64(len(rest)) {
			return fmt.Errorf("field %d: %d bytes, %d left", i, n, len(rest))
		}
		*p = rest[:n:n]
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the last field", len(rest))
	}
	if len(fs) == 8 && len(f.key) == 0 && len(f.digest) == 0 {
		return errors.New("a v2 leaf without a key id or request digest (Leaf writes v1 for those)")
	}
	return nil
}

func uvarintLen(n uint64) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}

// ParseLeaf decodes a leaf back into the entry it encodes. It accepts
// only what Leaf writes: Leaf(ParseLeaf(b)) is b.
func ParseLeaf(b []byte) (*daoguard.AuditEntry, error) {
	var f leafFields
	if err := walkLeaf(b, &f); err != nil {
		return nil, err
	}
	e := &daoguard.AuditEntry{
		Seq:       binary.BigEndian.Uint64(b[len(leafVersion):]),
		Time:      time.UnixMicro(int64(binary.BigEndian.Uint64(b[len(leafVersion)+8:]))).UTC(),
		OrgID:     string(f.org),
		ActorKind: string(f.actorKind),
		ActorID:   string(f.actor),
		KeyID:     string(f.key),
		ActionID:  string(f.action),
		Event:     string(f.event),

		RequestDigest: string(f.digest),
	}
	if len(f.detail) > 0 {
		e.Detail = bytes.Clone(f.detail)
	}
	return e, nil
}
