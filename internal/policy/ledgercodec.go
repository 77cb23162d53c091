package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/holiman/uint256"
)

// The ledger's binary form, version 1, is what a gateway stores so that a
// start reads a few buckets per key instead of every entry in the windows
// (uvarint and varint as in encoding/binary; strings are a uvarint length
// and bytes):
//
//	"DGL" 1 | lead | trail
//	uvarint kinds kept + 1 (0: all), then per kind: per byte | asset string
//	uvarint count, then per counterparty: addr string | varint last paid (UnixNano)
//	uvarint count, then per key: per byte | who string | asset string |
//	  varint sat | uvarint n | the sums before the first entry | n entries,
//	  each a uvarint time delta (the first from 0) and its sums' deltas:
//	  uvarint entries, then
//	  asset keys: a uint256 as a length byte and big-endian bytes
//	  USD keys:   uvarint micro-dollars | uvarint unpriced entries
//
// Times and prefix sums never decrease, so every delta is unsigned (the
// counts are kept mod 2^32, and so are their deltas). The
// encoding is deterministic (keys and counterparties sorted), and decoding
// checks every invariant the ledger relies on: it is read from a store
// that another process wrote.
var ledgerMagic = [4]byte{'D', 'G', 'L', 1}

// AppendBinary appends the ledger's binary form to b.
func (l *Ledger) AppendBinary(b []byte) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	b = append(b, ledgerMagic[:]...)
	b = append(b, byte(l.lookAlike.lead), byte(l.lookAlike.trail))
	if l.kinds == nil {
		b = append(b, 0)
	} else {
		kinds := make([]Kind, 0, len(l.kinds))
		for k := range l.kinds {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool { return kindLess(kinds[i], kinds[j]) })
		b = binary.AppendUvarint(b, uint64(len(kinds))+1)
		for _, k := range kinds {
			b = append(b, byte(k.Per))
			b = appendString(b, k.Asset)
		}
	}
	addrs := make([]string, 0, len(l.known))
	for a := range l.known {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	b = binary.AppendUvarint(b, uint64(len(addrs)))
	for _, a := range addrs {
		b = appendString(b, a)
		b = binary.AppendVarint(b, l.known[a])
	}
	keys := make([]Key, 0, len(l.series))
	for k := range l.series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		s := l.series[k]
		b = append(b, byte(k.Per))
		b = appendString(b, k.Who)
		b = appendString(b, k.Asset)
		b = binary.AppendVarint(b, int64(s.sat))
		b = binary.AppendUvarint(b, uint64(len(s.t)))
		b = binary.AppendUvarint(b, uint64(s.cnt0))
		var prevT int64
		prevC := s.cnt0
		next := func(i int) {
			b = binary.AppendUvarint(b, uint64(s.t[i]-prevT))
			b = binary.AppendUvarint(b, uint64(s.cnt[i]-prevC))
			prevT, prevC = s.t[i], s.cnt[i]
		}
		if k.Asset != "" {
			b = appendU256(b, &s.base)
			prev := s.base
			for i := range s.t {
				next(i)
				var d uint256.Int
				d.Sub(&s.amt[i], &prev)
				b = appendU256(b, &d)
				prev = s.amt[i]
			}
			continue
		}
		b = binary.AppendUvarint(b, uint64(s.usd0))
		b = binary.AppendUvarint(b, uint64(s.unp0))
		prevU, prevN := s.usd0, s.unp0
		for i := range s.t {
			next(i)
			b = binary.AppendUvarint(b, uint64(s.usd[i]-prevU))
			b = binary.AppendUvarint(b, uint64(s.unp[i]-prevN))
			prevU, prevN = s.usd[i], s.unp[i]
		}
	}
	return b, nil
}

// kindLess orders kinds in the encoding.
func kindLess(a, c Kind) bool {
	if a.Per != c.Per {
		return a.Per < c.Per
	}
	return a.Asset < c.Asset
}

// keyLess orders keys in the encoding.
func keyLess(a, c Key) bool {
	if a.Per != c.Per {
		return a.Per < c.Per
	}
	if a.Who != c.Who {
		return a.Who < c.Who
	}
	return a.Asset < c.Asset
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendU256(b []byte, v *uint256.Int) []byte {
	be := v.Bytes() // minimal big-endian, empty for zero
	b = append(b, byte(len(be)))
	return append(b, be...)
}

// ErrLedgerEncoding is returned for bytes that are not a ledger's binary
// form.
var ErrLedgerEncoding = errors.New("not a ledger encoding")

// ParseLedger reads a ledger's binary form.
func ParseLedger(data []byte) (*Ledger, error) {
	r := ledgerReader{b: data}
	var magic [4]byte
	copy(magic[:], r.bytes(4))
	if r.err != nil || magic != ledgerMagic {
		return nil, fmt.Errorf("%w: bad header", ErrLedgerEncoding)
	}
	lead, trail := int(r.byte()), int(r.byte())
	l := NewLedger(lead, trail)
	if r.err == nil && (l.lookAlike.lead != lead || l.lookAlike.trail != trail) {
		return nil, fmt.Errorf("%w: look-alike digits %d+%d", ErrLedgerEncoding, lead, trail)
	}
	// The kinds kept: their count plus one, 0 meaning all of them.
	if n := r.uvarint(); n > 0 {
		if n-1 > uint64(len(r.b)/2) {
			r.fail("count beyond the input")
		}
		l.kinds = map[Kind]bool{}
		var last Kind
		for i := uint64(0); i < n-1 && r.err == nil; i++ {
			k := Kind{Per: Per(r.byte()), Asset: r.string()}
			if k.Per < PerAgent || k.Per > PerAgents || i > 0 && !kindLess(last, k) {
				r.fail("bad or unordered kind")
			}
			last = k
			l.kinds[k] = true
		}
	}
	nk := r.count(2)
	prevA := ""
	for i := 0; i < nk && r.err == nil; i++ {
		a, last := r.string(), r.varint()
		if i > 0 && a <= prevA {
			r.fail("counterparties out of order") // the one encoding: sorted, none twice
		}
		prevA = a
		l.addKnown(a, last)
	}
	ns := r.count(5)
	var prevK Key
	for i := 0; i < ns && r.err == nil; i++ {
		k := Key{Per: Per(r.byte()), Who: r.string(), Asset: r.string()}
		if k.Per < PerAgent || k.Per > PerAgents {
			r.fail("bad key kind")
		}
		if i > 0 && !keyLess(prevK, k) {
			r.fail("keys out of order")
		}
		if !l.Records(Kind{k.Per, k.Asset}) {
			r.fail("a total of a kind not kept")
		}
		prevK = k
		sat := r.varint()
		// The fewest bytes an entry takes: a time, a count and an amount
		// (asset keys), or a time, a count, USD and unpriced: a forged
		// length cannot make the decoder allocate more than ~15× the input.
		n := r.count(3)
		if k.Asset == "" {
			n = r.recount(n, 4)
		}
		if r.err != nil {
			break
		}
		if n == 0 || sat < -1 || sat >= int64(n) {
			r.fail("bad series length")
			break
		}
		s := &series{sat: int(sat), t: make([]int64, n), cnt: make([]uint32, n), cnt0: r.u32()}
		var prevT int64
		prevC := s.cnt0
		var entries uint64 // the count's deltas, which must not wrap
		readTime := func(i int) {
			d := r.uvarint()
			if d > uint64(1<<63-1-prevT) {
				r.fail("time overflow")
			}
			prevT += int64(d)
			s.t[i] = prevT
			c := r.u32()
			if entries += uint64(c); c == 0 || entries > math.MaxUint32 {
				r.fail("bad entry count")
			}
			prevC += c
			s.cnt[i] = prevC
		}
		if k.Asset != "" {
			s.amt = make([]uint256.Int, n)
			r.u256(&s.base)
			prev := s.base
			for j := 0; j < n && r.err == nil; j++ {
				readTime(j)
				var d uint256.Int
				r.u256(&d)
				if _, o := s.amt[j].AddOverflow(&prev, &d); o {
					r.fail("sum overflow")
				}
				prev = s.amt[j]
			}
			// Saturated from sat on (all ones), as the ledger leaves it.
			if r.err == nil && s.sat >= 0 && !s.amt[s.sat].Eq(allOnes) {
				r.fail("saturation at an unsaturated sum")
			}
		} else {
			s.usd, s.unp = make([]int64, n), make([]uint32, n)
			s.usd0, s.unp0 = r.usdSum(0), r.u32()
			prevU, prevN := s.usd0, s.unp0
			for j := 0; j < n && r.err == nil; j++ {
				readTime(j)
				c := s.cnt[j] - prevCnt(s, j)
				prevU = r.usdSum(prevU)
				if u := r.u32(); u > c {
					r.fail("more unpriced entries than entries")
				} else {
					prevN += u
				}
				s.usd[j], s.unp[j] = prevU, prevN
			}
			// sat is the first entry at MaxUSD, as the ledger sets it.
			first := -1
			for j := 0; j < n && r.err == nil; j++ {
				if s.usd[j] == MaxUSD {
					first = j
					break
				}
			}
			if r.err == nil && s.sat != first {
				r.fail("saturation does not match the sums")
			}
		}
		l.series[k] = s
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return l, nil
}

// ledgerReader reads the binary form; the first error sticks, and every
// later read returns zero values.
type ledgerReader struct {
	b   []byte
	err error
}

func (r *ledgerReader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrLedgerEncoding, why)
	}
}

func (r *ledgerReader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *ledgerReader) byte() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

// uvarint reads a minimally encoded uvarint: the encoding is canonical,
// one byte string per ledger.
func (r *ledgerReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *ledgerReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != uvarintLen(uint64(v)<<1^uint64(v>>63)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uvarintLen is the length of v's minimal uvarint encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// recount checks a count already read against a larger minimum size per
// item.
func (r *ledgerReader) recount(n, min int) int {
	if r.err == nil && n > len(r.b)/min {
		r.fail("count beyond the input")
		return 0
	}
	return n
}

// prevCnt is the cumulative count before entry j.
func prevCnt(s *series, j int) uint32 {
	if j == 0 {
		return s.cnt0
	}
	return s.cnt[j-1]
}

// allOnes is a saturated asset sum.
var allOnes = new(uint256.Int).SetAllOne()

// count reads a number of items each taking at least min bytes: no more
// can follow than the bytes left, so a forged count cannot make the
// decoder allocate more than the input's size.
func (r *ledgerReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail("count beyond the input")
		return 0
	}
	return int(n)
}

func (r *ledgerReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("truncated string")
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *ledgerReader) u256(v *uint256.Int) {
	n := int(r.byte())
	if n > 32 {
		r.fail("uint256 longer than 32 bytes")
		return
	}
	be := r.bytes(n)
	if r.err == nil && n > 0 && be[0] == 0 {
		r.fail("uint256 not minimal")
		return
	}
	v.SetBytes(be)
}

func (r *ledgerReader) usdSum(prev int64) int64 {
	d := r.uvarint()
	if d > uint64(MaxUSD-prev) {
		r.fail("USD beyond the maximum")
		return prev
	}
	return prev + int64(d)
}

func (r *ledgerReader) u32() uint32 {
	d := r.uvarint()
	if d > math.MaxUint32 {
		r.fail("count beyond 32 bits")
		return 0
	}
	return uint32(d)
}
