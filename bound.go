package daoguard

// Bound is the most a principal (or all agents together) can move without
// a human over a window of one length: in one asset, or in USD across
// every asset. It is an upper bound derived from the policy's rules, its
// ceilings and the holdings: what the agent cannot exceed, whatever it
// submits.
type Bound struct {
	Principal string `json:"principal"` // "" for all agents together
	Name      string `json:"name,omitempty"`
	Period    string `json:"period"` // the window's length: 24h, 7d
	Asset     string `json:"asset"`  // a symbol, or "USD" for every asset together
	// Amount is the bound in the asset's display units (or USD); empty
	// when nothing bounds it (Unbounded).
	Amount    string `json:"amount,omitempty"`
	Unbounded bool   `json:"unbounded,omitempty"`
	By        string `json:"by"` // what binds it: a rule's window, a ceiling, the holdings
}
