package daoguard

import (
	"context"
	"math/big"
	"time"
)

// Flow is one movement of an asset to a counterparty, as a decision valued
// it. The window ledger sums flows; replays re-read them.
type Flow struct {
	Asset  string  `json:"asset,omitempty"` // symbol; "" for a token the catalogue does not know
	Token  string  `json:"token,omitempty"` // ERC-20 address; "" for the native asset
	Amount *BigInt `json:"amount"`          // base units
	USD    int64   `json:"usd_micro"`       // micro-dollars; -1 when no trusted price existed
	To     string  `json:"to"`
	// Allowance: an approval's allowance (exposure, not a payment): it
	// counts in windows, reserves no holdings.
	Allowance bool `json:"allowance,omitempty"`
	// From: the organisation's account whose tokens the flow moves under
	// an allowance it granted (transferFrom), lower-case hex; "" for the
	// action's own account. Its holdings are what the flow reserves.
	From string `json:"from,omitempty"`
}

// LedgerEntry is one action that counts against rolling windows: every
// action a decision did not deny, with the flows it moves (maybe none: it
// still counts for velocity limits).
type LedgerEntry struct {
	Seq         uint64 `json:"seq"` // assigned by the store, increasing in commit order per organisation
	OrgID       string `json:"org_id"`
	ActionID    string `json:"action_id"`
	PrincipalID string `json:"principal_id"`
	// Agent and Roles are the principal's kind and roles when it acted:
	// the shared totals the ceilings bound (all agents, each role).
	Agent bool      `json:"agent,omitempty"`
	Roles []string  `json:"roles,omitempty"`
	At    time.Time `json:"at"`
	Flows []Flow    `json:"flows"`
}

// Reservation is what one action that may still move funds holds of one
// account's balance of one asset: taken in the transaction that records
// its decision, released when the action ends without moving funds, and
// settled when it executes. A settled reservation still counts against a
// holdings snapshot read before it settled (the snapshot does not show the
// payment yet), so that a payment is never counted neither as reserved nor
// as spent.
type Reservation struct {
	OrgID    string  `json:"org_id"`
	ActionID string  `json:"action_id"`
	Account  string  `json:"account"` // the paying account's address, lower-case hex
	Asset    string  `json:"asset"`   // symbol
	Amount   *BigInt `json:"amount"`  // base units
	USD      int64   `json:"usd_micro"`
	// Settled is when the action executed; zero while it is open.
	Settled time.Time `json:"settled,omitempty"`
}

// ReservationStore keeps reservations. Like the ledger, it is read and
// written by decisions under the organisation's ledger lock (LedgerTail
// first), so that two gateways cannot both reserve the same balance.
type ReservationStore interface {
	// AddReservations records open reservations.
	AddReservations(ctx context.Context, rs []Reservation) error
	// Reserved returns, by asset symbol, what the account's open
	// reservations hold plus what those settled after settledAfter moved.
	Reserved(ctx context.Context, orgID, account string, settledAfter time.Time) (map[string]*big.Int, error)
	// EndReservations releases the action's reservations (settled false:
	// it ended without moving funds) or settles them at the unit's time.
	// Settled reservations older than SettledMemory are forgotten.
	EndReservations(ctx context.Context, actionID string, settled bool) error
}

// AgentStatsStore keeps each agent's running statistics for the anomaly
// breaker: an opaque blob of constant size, read and written by every
// decision on the agent under the organisation's ledger lock.
type AgentStatsStore interface {
	// AgentStats returns the agent's statistics; nil if it has none yet.
	AgentStats(ctx context.Context, principalID string) ([]byte, error)
	// PutAgentStats replaces them.
	PutAgentStats(ctx context.Context, orgID, principalID string, stats []byte) error
}

// SettledMemory is how long settled reservations are kept: far longer than
// any holdings snapshot is trusted.
const SettledMemory = time.Hour

// LedgerStore keeps the window ledger.
type LedgerStore interface {
	// AddLedgerEntry appends e and sets e.Seq. Call LedgerTail first in the
	// same unit: it takes the lock that orders entries.
	AddLedgerEntry(ctx context.Context, e *LedgerEntry) error
	// LedgerTail returns up to limit of the organisation's entries with Seq
	// above after and At after since, in Seq order. In a write unit it
	// first takes the organisation's ledger lock, held to the end of the
	// transaction: units that read windows and then add to them are
	// serialised, so two gateways cannot both spend the same budget, and
	// Seq order is commit order.
	LedgerTail(ctx context.Context, orgID string, after uint64, since time.Time, limit int) ([]LedgerEntry, error)
	// LockLedger takes the organisation's ledger lock (as LedgerTail does)
	// without reading: held to the end of the transaction. A no-op where
	// the store has a single writer.
	LockLedger(ctx context.Context, orgID string) error
	// PutLedgerSnapshot keeps s as the organisation's snapshot unless the
	// one kept already reaches further (a higher Seq).
	PutLedgerSnapshot(ctx context.Context, s *LedgerSnapshot) error
	// LedgerSnapshot returns the organisation's snapshot; ErrNotFound if
	// there is none.
	LedgerSnapshot(ctx context.Context, orgID string) (*LedgerSnapshot, error)
}

// LedgerSnapshot is a gateway's window ledger as of entry Seq (every entry
// through Seq in it, none after), in the decider's binary form: a start
// reads it and the entries after it instead of every entry in the windows.
// It is a cache: it can always be rebuilt from the entries.
type LedgerSnapshot struct {
	OrgID string
	Seq   uint64
	At    time.Time // when it was taken (the store's clock)
	Data  []byte
}

// PolicyVersion is one version of an organisation's policy document.
// Versions are numbered from 1 and never rewritten.
type PolicyVersion struct {
	OrgID    string    `json:"org_id"`
	Version  int       `json:"version"`
	Source   string    `json:"source"`              // the YAML document as loaded
	Digest   string    `json:"digest"`              // hex SHA-256 of Source
	ActionID string    `json:"action_id,omitempty"` // the approved policy action that made it; "" if loaded by the operator
	By       string    `json:"by"`                  // principal or operator that loaded it
	Created  time.Time `json:"created"`
}

// PolicyStore keeps policy versions.
type PolicyStore interface {
	// AddPolicy stores p, whose Version must be one more than the latest.
	// Errors: CONFLICT if that version exists (a concurrent change won).
	AddPolicy(ctx context.Context, p *PolicyVersion) error
	// CurrentPolicy returns the latest version's number, 0 if none.
	CurrentPolicy(ctx context.Context, orgID string) (int, error)
	// Policy returns one version; version 0 means the latest.
	// Errors: NOT_FOUND.
	Policy(ctx context.Context, orgID string, version int) (*PolicyVersion, error)
}
