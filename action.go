package daoguard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"
)

// Intent is an action exactly as a principal submitted it. It is kept
// verbatim for the record; only its decoded form is ever judged.
type Intent struct {
	Account   string `json:"account"`
	Kind      string `json:"kind"`                // "transfer" | "call" | "policy"
	Asset     string `json:"asset,omitempty"`     // transfer: symbol or token address
	To        string `json:"to"`                  // recipient or call target
	Amount    string `json:"amount,omitempty"`    // transfer: decimal string in display units
	Value     string `json:"value,omitempty"`     // call: native value in wei, decimal string
	Data      string `json:"data,omitempty"`      // call: 0x-prefixed calldata
	Operation string `json:"operation,omitempty"` // call: "call" (default) | "delegatecall"
	Rationale string `json:"rationale,omitempty"` // untrusted text: can only raise risk
	Policy    string `json:"policy,omitempty"`    // policy: the new policy document (YAML)
}

// Hash is a digest of the intent's canonical JSON encoding (struct field
// order is fixed), used to detect an Idempotency-Key reused for a different
// request.
func (in Intent) Hash() string {
	b, _ := json.Marshal(in) // cannot fail: strings only
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ActionKind is what an action does once decoded.
type ActionKind uint8

const (
	KindTransfer ActionKind = iota + 1
	KindCall
	KindPolicy // a change of the policy in force: applied by daoguard itself once approved
	// KindControl loosens a protection (resume the organisation, raise an
	// agent's autonomy): made by the controls endpoints, never submitted,
	// and applied by daoguard itself once k humans approved it.
	KindControl
)

func (k ActionKind) String() string {
	switch k {
	case KindTransfer:
		return "transfer"
	case KindCall:
		return "call"
	case KindPolicy:
		return "policy"
	case KindControl:
		return "control"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// ParseActionKind returns the kind named s.
func ParseActionKind(s string) (ActionKind, error) {
	switch s {
	case "transfer":
		return KindTransfer, nil
	case "call":
		return KindCall, nil
	case "policy":
		return KindPolicy, nil
	case "control":
		return KindControl, nil
	}
	return 0, FieldError(CodeInvalid, "kind", "unknown kind %q (want transfer, call or policy)", clip(s))
}

func (k ActionKind) MarshalText() ([]byte, error) { return enumText(k == 0, k.String()), nil }
func (k *ActionKind) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*k = 0
		return nil
	}
	*k, err = ParseActionKind(string(b))
	return err
}

// Operation is the EVM call type. Delegatecall runs foreign code with the
// account's storage and is treated as the most dangerous operation there is.
type Operation uint8

const (
	OpCall Operation = iota + 1
	OpDelegateCall
)

func (o Operation) String() string {
	switch o {
	case OpCall:
		return "call"
	case OpDelegateCall:
		return "delegatecall"
	}
	return fmt.Sprintf("Operation(%d)", uint8(o))
}

// ParseOperation returns the operation named s; "" means call.
func ParseOperation(s string) (Operation, error) {
	switch s {
	case "", "call":
		return OpCall, nil
	case "delegatecall":
		return OpDelegateCall, nil
	}
	return 0, FieldError(CodeInvalid, "operation", "unknown operation %q (want call or delegatecall)", clip(s))
}

func (o Operation) MarshalText() ([]byte, error) { return enumText(o == 0, o.String()), nil }
func (o *Operation) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*o = 0
		return nil
	}
	*o, err = ParseOperation(string(b))
	return err
}

// BigInt is an exact integer that travels as a decimal JSON string, never as
// a JSON number (which many clients parse into a float).
type BigInt big.Int

// NewBigInt wraps v.
func NewBigInt(v *big.Int) *BigInt { return (*BigInt)(new(big.Int).Set(v)) }

// Int returns the value as a *big.Int that the caller must not modify.
func (b *BigInt) Int() *big.Int { return (*big.Int)(b) }

func (b *BigInt) String() string { return (*big.Int)(b).String() }

func (b *BigInt) MarshalText() ([]byte, error) { return []byte((*big.Int)(b).String()), nil }

func (b *BigInt) UnmarshalText(t []byte) error {
	v, err := ParseBaseUnits(string(t))
	if err != nil {
		return err
	}
	*b = BigInt(*v)
	return nil
}

// Decoded is the validated, normalised form of an intent: what policy judges
// and what the executor runs. Amounts are exact base-unit integers.
type Decoded struct {
	Kind        ActionKind  `json:"kind"`
	ChainID     uint64      `json:"chain_id"`
	Account     string      `json:"account"`      // account name
	AccountKind AccountKind `json:"account_kind"` // how it executes
	From        string      `json:"from"`         // account address
	To          string      `json:"to"`           // recipient (transfer) or target (call)
	Asset       string      `json:"asset,omitempty"`
	Token       string      `json:"token,omitempty"` // ERC-20 address; empty for native
	Decimals    int         `json:"decimals,omitempty"`
	Amount      *BigInt     `json:"amount,omitempty"` // transfer: base units
	Value       *BigInt     `json:"value,omitempty"`  // call: wei
	Data        []byte      `json:"data,omitempty"`
	Operation   Operation   `json:"operation"`
	// Stated is what a call's intent says it moves, if it says so.
	Stated *Stated `json:"stated,omitempty"`
	// Policy is a policy change: the version it replaces and the diff.
	Policy *PolicyChange `json:"policy,omitempty"`
	// Control is the protection a control action loosens.
	Control *Control `json:"control,omitempty"`
	// Simulation is what the action did when simulated on the chain before
	// it was decided: policy judges it, approvers see it, and execution
	// re-simulates and compares. Nil when no chain is configured.
	Simulation *Simulation `json:"simulation,omitempty"`
	// SafeTx is the Safe transaction a Safe account's owners sign: its
	// nonce is the Safe's at decision time.
	SafeTx *SafeTxRef `json:"safe_tx,omitempty"`
	// Calls are the calls a call action makes, each decoded by the ABI
	// registry for the humans who approve it: the action itself, then
	// each transaction of a MultiSend batch.
	Calls []Call `json:"calls,omitempty"`
}

// Control is a loosening: resuming a paused organisation, or raising an
// agent's autonomy. Tightening (pause, lowering) is instant and needs one
// human; loosening needs k of them and a timelock, like a payment.
type Control struct {
	Op    string   `json:"op"`              // ControlResume or ControlAutonomy
	Agent string   `json:"agent,omitempty"` // autonomy: the agent
	From  Autonomy `json:"from,omitempty"`  // autonomy: its level when asked
	Level Autonomy `json:"level,omitempty"` // autonomy: the level asked for
}

// Control operations.
const (
	ControlResume   = "resume"
	ControlAutonomy = "autonomy"
)

// Call is one call an action makes, decoded with a known ABI: a configured
// contract's, or a standard one (ERC-20, ERC-721, ERC-1155, Safe,
// MultiSend). Calldata that no known ABI decodes exactly is opaque, and
// policy never lets it run autonomously under a rule that does not name
// its function (OPAQUE_CALLDATA).
type Call struct {
	Target    string    `json:"target"`
	Operation Operation `json:"operation"`
	Value     *BigInt   `json:"value,omitempty"`    // wei
	Batched   bool      `json:"batched,omitempty"`  // inside a MultiSend batch
	Contract  string    `json:"contract,omitempty"` // the configured contract, the catalogue token, or the standard
	Function  string    `json:"function,omitempty"` // its signature, e.g. transfer(address,uint256)
	Args      []CallArg `json:"args,omitempty"`
	Selector  string    `json:"selector,omitempty"` // 0x + 4 bytes
	Opaque    bool      `json:"opaque,omitempty"`
}

// CallArg is one decoded argument, as text: addresses EIP-55, integers in
// decimal, bytes in hex.
type CallArg struct {
	Name  string `json:"name,omitempty"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Simulation is an action run with eth_call at one block, as the account
// would run it (a Safe through its own simulateAndRevert).
type Simulation struct {
	Block   uint64 `json:"block"`
	Success bool   `json:"success"`
	Revert  string `json:"revert,omitempty"` // why it reverted
	// Error says the simulation could not run at all (the node is down):
	// nothing else is set, and policy fails closed to approval.
	Error string `json:"error,omitempty"`
	// Changes are the account's balances of catalogue assets that the
	// action changes; Allowances are those it sets, as they are afterwards.
	Changes    []BalanceChange `json:"changes,omitempty"`
	Allowances []Allowance     `json:"allowances,omitempty"`
	// Code binds every contract the action runs to its code: execution
	// re-reads it and refuses any change (CODE_CHANGED).
	Code []CodeBinding `json:"code,omitempty"`
}

// BalanceChange is one balance of the account before and after.
type BalanceChange struct {
	Asset  string  `json:"asset"`
	Token  string  `json:"token,omitempty"` // empty for native
	Before *BigInt `json:"before"`
	After  *BigInt `json:"after"`
}

// Spent is how much the balance fell (0 if it did not).
func (c BalanceChange) Spent() *big.Int {
	d := new(big.Int).Sub(c.Before.Int(), c.After.Int())
	if d.Sign() < 0 {
		return d.SetInt64(0)
	}
	return d
}

// Allowance is an ERC-20 allowance the account has granted.
type Allowance struct {
	Asset   string  `json:"asset,omitempty"` // empty for a token outside the catalogue
	Token   string  `json:"token"`
	Spender string  `json:"spender"`
	Amount  *BigInt `json:"amount"`
}

// CodeBinding is the code at an address (keccak-256 of it, as EXTCODEHASH
// gives for a contract) and, for an ERC-1967 proxy, the implementation's.
type CodeBinding struct {
	Address                string `json:"address"`
	CodeHash               string `json:"code_hash"`
	Implementation         string `json:"implementation,omitempty"`
	ImplementationCodeHash string `json:"implementation_code_hash,omitempty"`
}

// SafeTxRef is the Safe transaction of an action on a Safe account.
type SafeTxRef struct {
	Safe  string `json:"safe"`
	Nonce uint64 `json:"nonce"`
	Hash  string `json:"hash"` // the EIP-712 SafeTx hash the owners sign
}

// PolicyChange is a decoded policy action. The new document itself is the
// intent's Policy field.
type PolicyChange struct {
	Base   int    `json:"base_version"` // the version in force when it was submitted; applying fails if another change landed first
	Digest string `json:"digest"`       // hex SHA-256 of the new document
	Diff   string `json:"diff"`         // unified line diff from the base version
	// Bounds is how the change moves what each agent (and all agents
	// together) can move without a human: "agent payroll-bot: 24h USDC
	// 1500 → 3000", at the holdings and prices when it was submitted.
	Bounds []string `json:"bounds,omitempty"`
}

// Stated is an amount of an asset, in base units, that an intent states.
type Stated struct {
	Asset  string  `json:"asset"`
	Amount *BigInt `json:"amount"`
}

// Verdict is the outcome of a decision. The zero value is not a verdict;
// anything that is not exactly VerdictAllow or VerdictNeedsApproval denies.
type Verdict uint8

const (
	VerdictDeny Verdict = iota + 1
	VerdictNeedsApproval
	VerdictAllow
)

func (v Verdict) String() string {
	switch v {
	case VerdictDeny:
		return "deny"
	case VerdictNeedsApproval:
		return "needs_approval"
	case VerdictAllow:
		return "allow"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// ParseVerdict returns the verdict named s.
func ParseVerdict(s string) (Verdict, error) {
	for v := VerdictDeny; v <= VerdictAllow; v++ {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, Errorf(CodeInvalid, "unknown verdict %q", clip(s))
}

func (v Verdict) MarshalText() ([]byte, error) { return enumText(v == 0, v.String()), nil }
func (v *Verdict) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*v = 0
		return nil
	}
	*v, err = ParseVerdict(string(b))
	return err
}

// Reason explains one part of a decision: a stable UPPER_SNAKE code, the rule
// that produced it, and the figures it saw.
type Reason struct {
	Code   string `json:"code"`
	Rule   string `json:"rule,omitempty"`
	Detail string `json:"detail,omitempty"`
	// WouldPass says, on a deny or an escalation, what would have passed:
	// the budget left in a window and when it frees up, the limit, the
	// address meant.
	WouldPass string `json:"would_pass,omitempty"`
}

// Reason codes the service itself adds to decisions (policy adds its own).
const (
	ReasonNoPolicy        = "NO_POLICY"          // no policy loaded: deny by default
	ReasonAgentSupervised = "AGENT_SUPERVISED"   // the agent is supervised: approval forced
	ReasonDeciderError    = "DECISION_ERROR"     // evaluation failed: fail closed
	ReasonInvalidDecision = "INVALID_DECISION"   // the decider returned something unusable
	ReasonTextFlagged     = "TEXT_FLAGGED"       // the rationale reads as prompt injection: approval forced
	ReasonTextMismatch    = "RATIONALE_MISMATCH" // the rationale names another recipient, asset or amount than the action's: approval forced
	ReasonLoosening       = "LOOSENING"          // resuming or raising autonomy: k humans and the loosening timelock
	ReasonAnomalyBreaker  = "ANOMALY_BREAKER"    // the agent tripped the anomaly breaker: approval forced, the agent supervised
)

// Codes of an execution that failed before anything was sent: the checks
// right before broadcast (ExecResult.Code).
const (
	ResultCodeChanged       = "CODE_CHANGED"        // a bound contract's code or proxy implementation changed since approval
	ResultSimulationDrift   = "SIMULATION_DRIFT"    // the effect now differs from the approved one beyond the tolerance
	ResultSimulationRevert  = "SIMULATION_REVERTED" // it would revert now
	ResultSafeNonceUsed     = "SAFE_NONCE_USED"     // the Safe executed another transaction with the nonce the owners signed
	ResultSignaturesRefused = "SIGNATURES_REFUSED"  // the owners' signatures no longer meet the Safe's owners or threshold
	ResultNoSigner          = "NO_SIGNER"           // daoguard holds no key for the account
)

// Decision is the verdict on one action with its explanation.
type Decision struct {
	Verdict           Verdict       `json:"verdict"`
	Tier              string        `json:"tier,omitempty"`
	Reasons           []Reason      `json:"reasons"`
	RequiredApprovals int           `json:"required_approvals"`
	ApproverRole      string        `json:"approver_role,omitempty"` // if set, approvers must hold this role
	Timelock          time.Duration `json:"timelock,omitempty"`      // delay between the last approval and execution
	PolicyVersion     string        `json:"policy_version,omitempty"`
	// Inputs are the figures the decision was made on, kept so that a
	// replay under another policy sees the same world.
	Inputs *DecisionInputs `json:"inputs,omitempty"`
	// Counts: the action, if it goes ahead, counts against the rolling
	// windows (the decider judged its flows against them): the service
	// then records its window ledger entry. LedgerSeq is the last entry
	// the decision saw, handed back to a LedgerKeeper with that entry.
	// Neither is stored.
	Counts    bool   `json:"-"`
	LedgerSeq uint64 `json:"-"`
}

// DecisionInputs is the snapshot a policy decision saw.
type DecisionInputs struct {
	Flows    []Flow             `json:"flows,omitempty"`    // what the action moves, valued
	Prices   map[string]string  `json:"prices,omitempty"`   // trusted USD price per symbol used (decimal)
	Holdings map[string]*BigInt `json:"holdings,omitempty"` // the account's balances seen, base units
	// Reserved is what open actions held of those balances (base units):
	// the decision saw Holdings minus Reserved.
	Reserved map[string]*BigInt `json:"reserved,omitempty"`
	// Owners: the same for each other account of the organisation whose
	// tokens the action moves under its allowance, by lower-case address.
	Owners map[string]*OwnerInputs `json:"owners,omitempty"`
	// NearLimit: the action held a limit with less than 10% to spare.
	NearLimit bool `json:"near_limit,omitempty"`
}

// OwnerInputs is what a decision saw of another account whose tokens the
// action moves.
type OwnerInputs struct {
	Account  string             `json:"account"`        // its name
	Safe     bool               `json:"safe,omitempty"` // a Safe: pulls from it need approval
	Holdings map[string]*BigInt `json:"holdings,omitempty"`
	Reserved map[string]*BigInt `json:"reserved,omitempty"`
}

// Approval is one human's yes or no on one action.
type Approval struct {
	ActionID    string    `json:"action_id"`
	PrincipalID string    `json:"principal_id"`
	Approve     bool      `json:"approve"`             // false: a rejection
	Signature   string    `json:"signature,omitempty"` // e.g. an EIP-712 signature over the bound transaction
	Comment     string    `json:"comment,omitempty"`
	Created     time.Time `json:"created"`
}

// ExecResult is what an executor reports about an attempt.
type ExecResult struct {
	Success bool   `json:"success"`
	Code    string `json:"code,omitempty"` // why it failed unsent, e.g. CODE_CHANGED
	TxHash  string `json:"tx_hash,omitempty"`
	Block   uint64 `json:"block,omitempty"`
	GasUsed uint64 `json:"gas_used,omitempty"`
	Detail  string `json:"detail,omitempty"` // e.g. the revert reason
}

// Action is one intent on its way through the pipeline.
type Action struct {
	ID             string   `json:"id"`
	OrgID          string   `json:"org_id"`
	PrincipalID    string   `json:"principal_id"`
	IdempotencyKey string   `json:"idempotency_key,omitempty"`
	RequestHash    string   `json:"-"`
	Intent         Intent   `json:"intent"`
	Decoded        Decoded  `json:"decoded"`
	State          State    `json:"state"`
	Decision       Decision `json:"decision"`

	// RunnableAt is when a queued action's timelock ends; ExpiresAt is when an
	// awaiting or queued action stops being approvable or executable.
	RunnableAt time.Time `json:"timelock_until,omitzero"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`

	// Attempt identifies the current execution attempt. It is written, with
	// the state executing, before any side effect, and the executor treats it
	// as an idempotency key. LeaseOwner/LeaseUntil say which gateway process
	// is running it, so another process reconciles it only once the lease ends.
	Attempt    string      `json:"attempt_id,omitempty"`
	LeaseOwner string      `json:"-"`
	LeaseUntil time.Time   `json:"-"`
	Result     *ExecResult `json:"result,omitempty"`

	Version int64     `json:"version"` // optimistic concurrency: bumped on every update
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`

	// Logged is the audit entry of the change this process just made to
	// the action, if it made one; its Seq, the entry's position in the
	// log, is final once the transaction commits. Not stored.
	Logged *AuditEntry `json:"-"`
}
