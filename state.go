package daoguard

import "fmt"

// State is where an action is in its life. The zero value is invalid so that
// a forgotten assignment can never look like a real state.
type State uint8

// Action states, as in docs/ARCHITECTURE.md.
const (
	StatePending State = iota + 1
	StateDenied
	StateAwaitingApproval
	StateRejected
	StateExpired
	StateCancelled
	StateQueued
	StateVetoed
	StateExecuting
	StateExecuted
	StateFailed
)

var stateNames = map[State]string{
	StatePending:          "pending",
	StateDenied:           "denied",
	StateAwaitingApproval: "awaiting_approval",
	StateRejected:         "rejected",
	StateExpired:          "expired",
	StateCancelled:        "cancelled",
	StateQueued:           "queued",
	StateVetoed:           "vetoed",
	StateExecuting:        "executing",
	StateExecuted:         "executed",
	StateFailed:           "failed",
}

// transitions is the action state machine: the only place that says which
// state may follow which. Anything not listed is illegal.
var transitions = map[State][]State{
	StatePending:          {StateDenied, StateAwaitingApproval, StateQueued},
	StateAwaitingApproval: {StateRejected, StateExpired, StateCancelled, StateQueued},
	// queued → awaiting_approval: the anomaly breaker holds what an agent
	// queued to run on its own once it trips.
	StateQueued:    {StateVetoed, StateCancelled, StateExpired, StateExecuting, StateAwaitingApproval},
	StateExecuting: {StateExecuted, StateFailed},
}

// AllStates lists every state in declaration order.
func AllStates() []State {
	s := make([]State, 0, len(stateNames))
	for st := StatePending; st <= StateFailed; st++ {
		s = append(s, st)
	}
	return s
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Valid reports whether s is one of the declared states.
func (s State) Valid() bool { _, ok := stateNames[s]; return ok }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s.Valid() && len(transitions[s]) == 0 }

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to State) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// CheckTransition returns an ILLEGAL_TRANSITION error unless from → to is
// allowed. Callers must treat the error as a refusal, never skip it.
func CheckTransition(from, to State) error {
	if !CanTransition(from, to) {
		return Errorf(CodeIllegalTransition, "action is %s; it cannot become %s", from, to)
	}
	return nil
}

// ParseState returns the state named s.
func ParseState(s string) (State, error) {
	for st, n := range stateNames {
		if n == s {
			return st, nil
		}
	}
	return 0, Errorf(CodeInvalid, "unknown state %q", clip(s))
}

func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// enumText is the text form of an enum value: empty for the zero value, so
// that an unset field round-trips as unset (and still means "invalid").
func enumText(zero bool, name string) []byte {
	if zero {
		return []byte{}
	}
	return []byte(name)
}

func (s *State) UnmarshalText(b []byte) error {
	st, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}
