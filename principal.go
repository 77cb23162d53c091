package daoguard

import (
	"fmt"
	"time"
)

// Organisation is one DAO: the unit that owns accounts, principals and the
// kill switch.
type Organisation struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Paused   bool      `json:"paused"`              // kill switch: no agent submissions, no execution
	PausedBy string    `json:"paused_by,omitempty"` // principal that flipped the switch last
	PausedAt time.Time `json:"paused_at,omitzero"`
	Created  time.Time `json:"created"`
}

// PrincipalKind tells agents from humans. Only humans approve, veto, pause,
// resume, or raise an agent's autonomy.
type PrincipalKind uint8

const (
	PrincipalAgent PrincipalKind = iota + 1
	PrincipalHuman
)

func (k PrincipalKind) String() string {
	switch k {
	case PrincipalAgent:
		return "agent"
	case PrincipalHuman:
		return "human"
	}
	return fmt.Sprintf("PrincipalKind(%d)", uint8(k))
}

// ParsePrincipalKind returns the kind named s.
func ParsePrincipalKind(s string) (PrincipalKind, error) {
	switch s {
	case "agent":
		return PrincipalAgent, nil
	case "human":
		return PrincipalHuman, nil
	}
	return 0, Errorf(CodeInvalid, "unknown principal kind %q (want agent or human)", clip(s))
}

func (k PrincipalKind) MarshalText() ([]byte, error) { return enumText(k == 0, k.String()), nil }
func (k *PrincipalKind) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*k = 0
		return nil
	}
	*k, err = ParsePrincipalKind(string(b))
	return err
}

// Autonomy is how far an agent may act on its own. Values are ordered:
// a larger value is more autonomy, so "lowering" is a smaller value.
type Autonomy uint8

const (
	AutonomySuspended  Autonomy = iota + 1 // nothing accepted
	AutonomySupervised                     // everything needs human approval
	AutonomyAutonomous                     // policy tiers apply
)

func (a Autonomy) String() string {
	switch a {
	case AutonomySuspended:
		return "suspended"
	case AutonomySupervised:
		return "supervised"
	case AutonomyAutonomous:
		return "autonomous"
	}
	return fmt.Sprintf("Autonomy(%d)", uint8(a))
}

// Valid reports whether a is one of the declared levels.
func (a Autonomy) Valid() bool { return a >= AutonomySuspended && a <= AutonomyAutonomous }

// ParseAutonomy returns the level named s.
func ParseAutonomy(s string) (Autonomy, error) {
	for a := AutonomySuspended; a <= AutonomyAutonomous; a++ {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, Errorf(CodeInvalid, "unknown autonomy level %q (want autonomous, supervised or suspended)", clip(s))
}

func (a Autonomy) MarshalText() ([]byte, error) { return enumText(a == 0, a.String()), nil }
func (a *Autonomy) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*a = 0
		return nil
	}
	*a, err = ParseAutonomy(string(b))
	return err
}

// Principal is anyone who calls daoguard: an AI agent or a human.
type Principal struct {
	ID       string        `json:"id"`
	OrgID    string        `json:"org_id"`
	Kind     PrincipalKind `json:"kind"`
	Name     string        `json:"name"`
	Roles    []string      `json:"roles,omitempty"`    // named groups, e.g. "council"; policy refers to them
	Autonomy Autonomy      `json:"autonomy,omitempty"` // agents only; zero for humans
	Created  time.Time     `json:"created"`
	Updated  time.Time     `json:"updated"`
}

// IsHuman reports whether p is a human principal.
func (p *Principal) IsHuman() bool { return p != nil && p.Kind == PrincipalHuman }

// HasRole reports whether p holds role.
func (p *Principal) HasRole(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// AccountKind says how an account executes: a hot wallet daoguard signs for,
// or a Safe multisig that human owners co-sign.
type AccountKind uint8

const (
	AccountWallet AccountKind = iota + 1
	AccountSafe
)

func (k AccountKind) String() string {
	switch k {
	case AccountWallet:
		return "wallet"
	case AccountSafe:
		return "safe"
	}
	return fmt.Sprintf("AccountKind(%d)", uint8(k))
}

// ParseAccountKind returns the kind named s.
func ParseAccountKind(s string) (AccountKind, error) {
	switch s {
	case "wallet":
		return AccountWallet, nil
	case "safe":
		return AccountSafe, nil
	}
	return 0, Errorf(CodeInvalid, "unknown account kind %q (want wallet or safe)", clip(s))
}

func (k AccountKind) MarshalText() ([]byte, error) { return enumText(k == 0, k.String()), nil }
func (k *AccountKind) UnmarshalText(b []byte) (err error) {
	if len(b) == 0 {
		*k = 0
		return nil
	}
	*k, err = ParseAccountKind(string(b))
	return err
}

// Account is an on-chain address the organisation acts from.
type Account struct {
	OrgID   string      `json:"org_id"`
	Name    string      `json:"name"` // "treasury", "ops"
	ChainID uint64      `json:"chain_id"`
	Address string      `json:"address"`
	Kind    AccountKind `json:"kind"`
}

// Asset is a token the organisation knows. Address is empty for the chain's
// native coin.
type Asset struct {
	OrgID    string `json:"org_id"`
	Symbol   string `json:"symbol"`
	ChainID  uint64 `json:"chain_id"`
	Address  string `json:"address,omitempty"`
	Decimals int    `json:"decimals"`
}

// Native reports whether the asset is the chain's native coin.
func (a *Asset) Native() bool { return a.Address == "" }
