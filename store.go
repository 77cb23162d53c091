package daoguard

import (
	"context"
	"errors"
	"time"
)

// DataVersion is the data-compatibility version this binary reads and
// writes. A store records it on creation; opening a store with a newer
// version fails with INCOMPATIBLE_STORE instead of misreading it.
//
// 2: audit entries name their request (v2 leaves), which a version-1
// binary would read without those fields and report as tampered.
const DataVersion = 2

// Store is durable state. Update runs fn in one atomic transaction: every
// row fn writes, including its audit entries, commits together or not at
// all. fn may be run again if the store must retry the transaction, so it
// must have no effects outside tx. If fn's writes do not commit, the fields
// the store set on the caller's objects (Version, Created, Updated) are
// restored. View runs fn on a consistent read-only snapshot.
//
// Errors: whatever fn returns (then nothing is committed), UNAVAILABLE when
// the database cannot be reached, INTERNAL otherwise.
type Store interface {
	Update(ctx context.Context, fn func(tx Tx) error) error
	View(ctx context.Context, fn func(tx Tx) error) error
	Close() error
}

// Tx is one unit of work. Now is the same for everything written in it.
type Tx interface {
	Now() time.Time
	OrgStore
	PrincipalStore
	CredentialStore
	NonceStore
	CatalogStore
	ActionStore
	ApprovalStore
	AuditLog
	PolicyStore
	LedgerStore
	ReservationStore
	AgentStatsStore
	ChainStore
	// AfterCommit runs fn once this unit's writes have committed, before
	// any later unit of this store runs and before the caller of Update
	// returns; never if they do not commit, nor in a View. fn must be quick
	// and must not use the store: it updates in-memory caches of what was
	// committed.
	AfterCommit(fn func())
	// OnUndo runs fn if this unit's writes are undone: the unit fails, or
	// the batch holding it is rolled back (and perhaps run again). It runs
	// before any other unit can see the database without those writes
	// (in PostgreSQL, before the transaction's locks are released), newest
	// first; never in a View. fn must be quick and must not use the store:
	// it takes back in-memory state the unit staged.
	OnUndo(fn func())
}

// OrgStore keeps organisations.
type OrgStore interface {
	// Org returns the organisation. Inside Update, a concurrent unit that
	// changes it (OrgForUpdate, then PutOrg) is ordered entirely before or
	// after this unit: what this unit decides on the organisation (paused?)
	// cannot be overtaken. Errors: NOT_FOUND.
	Org(ctx context.Context, id string) (*Organisation, error)
	// OrgForUpdate is Org for a unit that will change the organisation.
	OrgForUpdate(ctx context.Context, id string) (*Organisation, error)
	// PutOrg inserts or replaces the organisation.
	PutOrg(ctx context.Context, o *Organisation) error
}

// PrincipalStore keeps agents and humans.
type PrincipalStore interface {
	// Principal returns the principal, with the same ordering guarantee as
	// Org against PrincipalForUpdate. Errors: NOT_FOUND.
	Principal(ctx context.Context, id string) (*Principal, error)
	// Principals lists an organisation's principals, oldest first.
	Principals(ctx context.Context, orgID string) ([]*Principal, error)
	// PrincipalForUpdate is Principal for a unit that will change it.
	PrincipalForUpdate(ctx context.Context, id string) (*Principal, error)
	// PutPrincipal inserts or replaces the principal.
	PutPrincipal(ctx context.Context, p *Principal) error
}

// CatalogStore keeps the accounts and assets an organisation acts with.
type CatalogStore interface {
	// Account returns the named account. Errors: UNKNOWN_ACCOUNT.
	Account(ctx context.Context, orgID, name string) (*Account, error)
	PutAccount(ctx context.Context, a *Account) error
	// Asset returns the asset by symbol. Errors: UNKNOWN_ASSET.
	Asset(ctx context.Context, orgID, symbol string) (*Asset, error)
	PutAsset(ctx context.Context, a *Asset) error
	// Assets lists an organisation's assets by symbol.
	Assets(ctx context.Context, orgID string) ([]*Asset, error)
	// Accounts lists an organisation's accounts by name.
	Accounts(ctx context.Context, orgID string) ([]*Account, error)
}

// ErrIdempotencyKeyUsed is returned by CreateAction when the principal has
// already used the action's idempotency key.
var ErrIdempotencyKeyUsed = &Error{Code: CodeConflict, Message: "idempotency key already used"}

// ActionStore keeps actions.
type ActionStore interface {
	// Action returns the action. Inside Update, nobody else can change it
	// between this read and the unit's UpdateAction and still have the unit
	// commit: SQLite has a single writer, and PostgreSQL reruns a unit whose
	// read version is stale by the time it writes. Errors: NOT_FOUND.
	Action(ctx context.Context, id string) (*Action, error)
	// ActionByIdempotencyKey returns the action the principal submitted with
	// key. Errors: NOT_FOUND.
	ActionByIdempotencyKey(ctx context.Context, principalID, key string) (*Action, error)
	// CreateAction inserts a new action with Version 1.
	// Errors: ErrIdempotencyKeyUsed.
	CreateAction(ctx context.Context, a *Action) error
	// UpdateAction writes a's mutable fields (state, decision, times,
	// attempt, lease, result), provided the stored version still equals
	// a.Version, and increments a.Version. Intent and Decoded are never
	// rewritten: what humans approve cannot change underneath them.
	// Errors: CONFLICT, NOT_FOUND.
	UpdateAction(ctx context.Context, a *Action) error
	// FindActions lists actions matching f, oldest first.
	FindActions(ctx context.Context, f ActionFilter) ([]*Action, error)
}

// ActionFilter selects actions. Zero fields do not filter; a time filter
// never matches an action whose time is unset.
type ActionFilter struct {
	OrgID       string
	PrincipalID string
	States      []State
	// RunnableBy selects actions whose timelock ends at or before it.
	RunnableBy time.Time
	// ExpiresBy selects actions that expire at or before it.
	ExpiresBy time.Time
	// LeaseEndedBy selects actions whose execution lease ended at or before it.
	LeaseEndedBy time.Time
	// NotPaused leaves out actions of paused organisations, so that one
	// paused organisation's backlog cannot crowd out the others' work.
	NotPaused bool
	// Paused keeps only actions of paused organisations (a resume waiting
	// to be applied).
	Paused bool
	// Kind keeps only actions of this kind (0: any).
	Kind    ActionKind
	AfterID string // for paging: IDs sort by creation time
	Limit   int    // 0 means DefaultFindLimit
	// Newest lists newest first (AfterID then pages backwards): an
	// agent's recent history, for the anomaly rules.
	Newest bool
}

// DefaultFindLimit and MaxFindLimit bound FindActions.
const (
	DefaultFindLimit = 100
	MaxFindLimit     = 1000
)

// ApprovalStore keeps approvals and rejections.
type ApprovalStore interface {
	// AddApproval records one human's vote on an action.
	// Errors: DUPLICATE_APPROVAL if that human already voted on it.
	AddApproval(ctx context.Context, ap *Approval) error
	// Approvals lists an action's votes, oldest first.
	Approvals(ctx context.Context, actionID string) ([]Approval, error)
}

// AuditLog is the append-only log. There is deliberately no way to update or
// delete an entry.
type AuditLog interface {
	// Append adds e to the log; the store assigns e.Seq at commit.
	Append(ctx context.Context, e *AuditEntry) error
	// AuditEntries returns up to limit entries starting at seq from.
	AuditEntries(ctx context.Context, from uint64, limit int) ([]AuditEntry, error)
	// ActionAudit returns an action's entries in log order: its timeline.
	ActionAudit(ctx context.Context, actionID string) ([]AuditEntry, error)
	// SubjectAudit returns the newest limit entries whose Subject is
	// principalID, in log order: an agent's risk history.
	SubjectAudit(ctx context.Context, principalID string, limit int) ([]AuditEntry, error)
	// AuditSize returns the number of committed entries.
	AuditSize(ctx context.Context) (uint64, error)
	// AuditHashes returns up to limit stored hashes of the log's Merkle
	// tree with index from or more, in index order (RFC 6962, in
	// golang.org/x/mod/sumdb/tlog's stored-hash layout). The stores write
	// them in the same transaction as the entries they hash.
	AuditHashes(ctx context.Context, from int64, limit int) ([]AuditHash, error)
	// AuditHashCount returns how many tree hashes are stored.
	AuditHashCount(ctx context.Context) (int64, error)
	// AddCheckpoint records a signed checkpoint of the log at size
	// entries. Errors: CONFLICT (one of that size is recorded).
	AddCheckpoint(ctx context.Context, size int64, note []byte) error
	// LatestCheckpoint returns the signed checkpoint of the largest size.
	// Errors: NOT_FOUND.
	LatestCheckpoint(ctx context.Context) ([]byte, error)
}

// ChainStore keeps what the EVM executor must never lose: its signing
// keys, sealed, and every transaction it signed, recorded before it is
// broadcast, so that after a crash it is looked up and sent again rather
// than signed anew.
type ChainStore interface {
	// Signer returns the named key. Errors: NOT_FOUND.
	Signer(ctx context.Context, orgID, name string) (*Signer, error)
	// AddSigner stores a new key. Errors: CONFLICT if the name is taken.
	AddSigner(ctx context.Context, s *Signer) error
	// AddBroadcast records a signed transaction before it is sent.
	// Errors: CONFLICT if the attempt already has one, or if the sender's
	// nonce is already used on that chain (another process signed first).
	AddBroadcast(ctx context.Context, b *Broadcast) error
	// Broadcast returns the transaction signed for an attempt.
	// Errors: NOT_FOUND.
	Broadcast(ctx context.Context, attempt string) (*Broadcast, error)
	// NextNonce returns one past the highest nonce recorded for sender on
	// the chain; 0 if none.
	NextNonce(ctx context.Context, chainID uint64, sender string) (uint64, error)
}

// Signer is a key daoguard generated and holds: a hot wallet's, or the
// relayer (and optional Safe owner) key. The private key is sealed with the
// master keyring; only its address is ever shown.
type Signer struct {
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Address   string    `json:"address"` // EIP-55
	SealedKey []byte    `json:"-"`
	Created   time.Time `json:"created"`
}

// SignerAD is the additional data a signer's key is sealed with: a sealed
// key moved to another signer's row does not open.
func SignerAD(orgID, name string) []byte {
	return []byte("daoguard signer\x00" + orgID + "\x00" + name)
}

// Broadcast is one signed transaction, recorded before it is sent.
type Broadcast struct {
	Attempt  string    `json:"attempt"`
	ActionID string    `json:"action_id"`
	ChainID  uint64    `json:"chain_id"`
	Sender   string    `json:"sender"` // lower-case hex
	Nonce    uint64    `json:"nonce"`
	TxHash   string    `json:"tx_hash"`
	Raw      []byte    `json:"-"` // the signed transaction, RLP (EIP-2718)
	Created  time.Time `json:"created"`
}

// IsNotFound reports whether err carries NOT_FOUND.
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }

// IsIdempotencyKeyUsed reports whether err is ErrIdempotencyKeyUsed.
func IsIdempotencyKeyUsed(err error) bool { return errors.Is(err, ErrIdempotencyKeyUsed) }
