// Package policy is the deterministic judge of decoded actions. This file
// is its address hygiene: recognising an address made to look like one the
// organisation already pays.
package policy

import (
	"slices"
	"strings"
)

// DefaultLookAlikeDigits is how many leading and trailing hex digits two
// addresses must share to look alike: what people (and many wallets, which
// shorten 0x1234…abcd) check at a glance.
const DefaultLookAlikeDigits = 4

// LookAlikes recognises address poisoning: an attacker generates an
// address whose first and last hex digits equal those of a recipient the
// victim knows, plants it in the victim's history, and waits for a copy
// and paste from there. An address that shares the leading and trailing
// digits of a known one without being it is a look-alike.
//
// Lookups are one map access, whatever the number of known addresses. Not
// safe for concurrent Add; concurrent Imitated calls are fine once built.
type LookAlikes struct {
	lead, trail int
	known       map[string]bool        // canonical (lowercase) known addresses
	byEnds      map[[2]string][]string // ends(addr) → known addresses with those ends, sorted
}

// NewLookAlikes returns an empty set comparing lead leading and trail
// trailing hex digits (each at least 1; at most 20 together, or every
// address would only look like itself).
func NewLookAlikes(lead, trail int) *LookAlikes {
	lead, trail = max(1, lead), max(1, trail)
	if lead+trail > 20 {
		lead, trail = 10, 10
	}
	return &LookAlikes{lead: lead, trail: trail, known: map[string]bool{}, byEnds: map[[2]string][]string{}}
}

// ends is the key of an address: its leading and trailing digits.
func (l *LookAlikes) ends(addr string) ([2]string, bool) {
	hex, ok := strings.CutPrefix(addr, "0x")
	if !ok || len(hex) != 40 {
		return [2]string{}, false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return [2]string{}, false
		}
	}
	// Substrings, not a concatenation: a lookup allocates nothing.
	return [2]string{hex[:l.lead], hex[40-l.trail:]}, true
}

// Add records a known address (0x and 40 hex digits, any case). Malformed
// input is ignored: it can be neither imitated nor an imitation.
func (l *LookAlikes) Add(addr string) {
	addr = strings.ToLower(addr)
	k, ok := l.ends(addr)
	if !ok || l.known[addr] {
		return
	}
	l.known[addr] = true
	list := append(l.byEnds[k], addr)
	slices.Sort(list)
	l.byEnds[k] = list
}

// Remove forgets a known address (one not seen for longer than the
// organisation remembers counterparties).
func (l *LookAlikes) Remove(addr string) {
	addr = strings.ToLower(addr)
	k, ok := l.ends(addr)
	if !ok || !l.known[addr] {
		return
	}
	delete(l.known, addr)
	list := l.byEnds[k]
	if i, found := slices.BinarySearch(list, addr); found {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(l.byEnds, k)
	} else {
		l.byEnds[k] = list
	}
}

// Len is the number of known addresses.
func (l *LookAlikes) Len() int { return len(l.known) }

// Imitated returns the known address that addr imitates, or "" if addr is
// itself known or looks like none of them. With several candidates it
// returns the smallest, so the answer never depends on insertion order.
func (l *LookAlikes) Imitated(addr string) string {
	addr = strings.ToLower(addr)
	if l.known[addr] {
		return ""
	}
	k, ok := l.ends(addr)
	if !ok {
		return ""
	}
	if list := l.byEnds[k]; len(list) > 0 {
		return list[0]
	}
	return ""
}
