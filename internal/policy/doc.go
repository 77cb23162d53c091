package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SchemaVersion is the policy document format this binary reads.
const SchemaVersion = 1

// MaxDocumentSize bounds a policy document: parsing is linear, but a policy
// is loaded through the API and must not be a way to exhaust memory.
const MaxDocumentSize = 4 << 20

// Document is a policy as written in YAML. Parse validates it and compiles
// it into a Policy; nothing reads a Document directly.
type Document struct {
	Version int    `yaml:"version"`
	Name    string `yaml:"name"`

	// Lists are named sets of addresses, referred to by rules.
	Lists map[string][]string `yaml:"lists"`
	// Groups are approver groups: the humans holding a role.
	Groups map[string]GroupDoc `yaml:"groups"`
	// Council decides the `vote` tier (until the governance module exists)
	// and the protected actions humans may take.
	Council ApprovalDoc `yaml:"council"`

	Prices     PricesDoc     `yaml:"prices"`
	Protection ProtectionDoc `yaml:"protections"`
	Units      UnitsDoc      `yaml:"units"`
	LookAlike  LookAlikeDoc  `yaml:"look_alike"`
	Rules      []RuleDoc     `yaml:"rules"`
	// Ceilings cap what agents move without a human, whatever the rules
	// allow: checked at every decision after the rules.
	Ceilings []CeilingDoc `yaml:"ceilings"`
}

// CeilingDoc is one council-set ceiling: over its windows, what the agents
// in its scope move on their own (payments and allowances, every asset
// together in USD where priced, or one asset in its own units) stays
// within its limits; beyond, the council approves. Exactly one scope:
// principals (each agent on its own), roles (the agents holding each
// role, together), or agents: true (all agents together).
type CeilingDoc struct {
	Name       string      `yaml:"name"`
	Principals []string    `yaml:"principals"`
	Roles      []string    `yaml:"roles"`
	Agents     bool        `yaml:"agents"`
	Windows    []WindowDoc `yaml:"windows"` // period and max_usd, or asset and max_amount; no per
}

// GroupDoc names the role whose holders approve.
type GroupDoc struct {
	Role string `yaml:"role"`
}

// ApprovalDoc is how many humans of which group approve, and the timelock
// between the last approval and execution.
type ApprovalDoc struct {
	Group     string `yaml:"group"`
	Approvals int    `yaml:"approvals"`
	Timelock  string `yaml:"timelock"`
}

// PricesDoc configures how price readings become one price.
type PricesDoc struct {
	MaxAge          string `yaml:"max_age"`
	MaxDeviationPct string `yaml:"max_deviation_pct"`
	Quorum          int    `yaml:"quorum"`
	GovernanceToken string `yaml:"governance_token"`
}

// ProtectionDoc configures (never disables) the built-in protections.
type ProtectionDoc struct {
	DelegatecallAllowlist []string          `yaml:"delegatecall_allowlist"`
	ApprovalCaps          map[string]string `yaml:"approval_caps"`
}

// UnitsDoc configures the units sanity checks.
type UnitsDoc struct {
	MaxHoldingsPct        string `yaml:"max_holdings_pct"`
	MaxStatedDeviationPct string `yaml:"max_stated_deviation_pct"`
}

// LookAlikeDoc sets how many leading and trailing hex digits make two
// addresses look alike.
type LookAlikeDoc struct {
	Lead  int `yaml:"lead"`
	Trail int `yaml:"trail"`
}

// RuleDoc is one rule: what it matches, the tier it gives, its limits and
// the tier it gives when a limit is exceeded.
type RuleDoc struct {
	Name string `yaml:"name"`

	// Who.
	Principals []string `yaml:"principals"` // principal IDs
	Roles      []string `yaml:"roles"`
	Kinds      []string `yaml:"principal_kinds"` // agent | human

	// What.
	Accounts     []string    `yaml:"accounts"`
	Actions      []string    `yaml:"actions"` // transfer | call | approval | batch
	Assets       []string    `yaml:"assets"`
	Recipients   *AddrSetDoc `yaml:"recipients"`
	NewRecipient *bool       `yaml:"new_recipient"`
	Targets      *AddrSetDoc `yaml:"targets"`
	Function     string      `yaml:"function"` // e.g. "transfer(address,uint256)"
	Params       []ParamDoc  `yaml:"params"`
	Value        *CompareDoc `yaml:"native_value"` // wei
	Operation    string      `yaml:"operation"`    // call | delegatecall

	// When.
	Time *TimeDoc `yaml:"time"`
	// CEL is a boolean CEL expression over the action (see docs/POLICY.md).
	CEL string `yaml:"cel"`

	Tier      string       `yaml:"tier"`
	Approval  *ApprovalDoc `yaml:"approval"`
	Limits    *LimitsDoc   `yaml:"limits"`
	OverLimit string       `yaml:"over_limit"`
}

// AddrSetDoc is a set of addresses: literal ones, named lists, or both.
type AddrSetDoc struct {
	Addresses []string `yaml:"addresses"`
	Lists     []string `yaml:"lists"`
	Not       bool     `yaml:"not"` // match addresses outside the set
}

// ParamDoc is a condition on one ABI-decoded parameter. Arg is a path:
// "1" is the second parameter, "2.0" the first component of the third
// (a tuple), "3.*" every element of the fourth (an array).
type ParamDoc struct {
	Arg   string   `yaml:"arg"`
	Op    string   `yaml:"op"` // eq ne lt le gt ge in not_in
	Value string   `yaml:"value"`
	Set   []string `yaml:"set"`
}

// CompareDoc compares a number.
type CompareDoc struct {
	Op    string `yaml:"op"`
	Value string `yaml:"value"`
}

// TimeDoc is a weekly time window.
type TimeDoc struct {
	Days  []string `yaml:"days"`  // mon … sun
	Hours string   `yaml:"hours"` // "09:00-17:00", end exclusive; may wrap midnight
	Zone  string   `yaml:"zone"`  // IANA name; default UTC
}

// LimitsDoc are the limits within which a rule gives its tier.
type LimitsDoc struct {
	MaxAmount      string      `yaml:"max_amount"` // per action, in the display units of the rule's one asset
	MaxUSD         string      `yaml:"max_usd"`
	MaxHoldingsPct string      `yaml:"max_holdings_pct"` // of the treasury's USD value
	Windows        []WindowDoc `yaml:"windows"`
}

// WindowDoc is a rolling-window limit.
type WindowDoc struct {
	Period    string `yaml:"period"`
	Per       string `yaml:"per"`   // agent | recipient | org
	Asset     string `yaml:"asset"` // with max_amount
	MaxAmount string `yaml:"max_amount"`
	MaxUSD    string `yaml:"max_usd"`
	MaxCount  int    `yaml:"max_count"`
}

// Problem is one thing wrong with a policy document, located by line and
// field path.
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ParseError lists every problem found in a document, in document order.
type ParseError struct {
	Problems []Problem
}

func (e *ParseError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid policy: " + strings.Join(parts, "; ")
}

// decodeDocument reads YAML strictly: one document, unknown keys refused,
// types checked. It returns the document and its node tree, which locates
// the problems the validation finds later.
func decodeDocument(src []byte) (*Document, *yaml.Node, error) {
	if len(src) > MaxDocumentSize {
		return nil, nil, &ParseError{Problems: []Problem{{Message: fmt.Sprintf("the document is larger than %d bytes", MaxDocumentSize)}}}
	}
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, nil, &ParseError{Problems: []Problem{{Message: "the document is empty"}}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, nil, yamlProblems(err)
	}
	// Aliases let a small document expand into a huge one (a "billion
	// laughs"); a policy has no use for them.
	if hasAlias(&root, 0) {
		return nil, nil, &ParseError{Problems: []Problem{{Message: "YAML anchors and aliases are not allowed in a policy"}}}
	}
	var doc Document
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, yamlProblems(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, &ParseError{Problems: []Problem{{Message: "the file holds more than one YAML document"}}}
	}
	return &doc, &root, nil
}

func hasAlias(n *yaml.Node, depth int) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || depth > 64 {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

// yamlProblems turns yaml.v3's errors ("line 4: field x not found in type
// policy.RuleDoc") into problems with a line and no Go type names.
func yamlProblems(err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	pe := &ParseError{}
	for _, m := range msgs {
		p := Problem{Message: m}
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if i := strings.IndexByte(rest, ':'); i > 0 {
				if n, err := strconv.Atoi(rest[:i]); err == nil {
					p.Line, p.Message = n, strings.TrimSpace(rest[i+1:])
				}
			}
		}
		p.Message = cleanTypeNames(p.Message)
		pe.Problems = append(pe.Problems, p)
	}
	return pe
}

// cleanTypeNames rewrites yaml.v3's Go-flavoured messages for policy
// authors.
func cleanTypeNames(m string) string {
	if f, ok := strings.CutPrefix(m, "field "); ok {
		if name, _, ok := strings.Cut(f, " not found in type"); ok {
			return "unknown key " + strconv.Quote(name)
		}
	}
	if strings.HasPrefix(m, "cannot unmarshal ") {
		m = strings.Replace(m, "cannot unmarshal", "wrong type:", 1)
		if i := strings.Index(m, " into "); i > 0 {
			want := m[i+len(" into "):]
			switch {
			case strings.HasPrefix(want, "[]"):
				want = "a list"
			case strings.HasPrefix(want, "map["), strings.HasPrefix(want, "policy."):
				want = "a mapping"
			case want == "int":
				want = "an integer"
			case want == "bool":
				want = "true or false"
			}
			m = m[:i] + ", want " + want
		}
	}
	return m
}

// locate returns the line of the node at path (keys and list indexes) in
// the document's node tree, or of the deepest node that exists.
func locate(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// fieldPath renders a path as rules[3].limits.max_usd.
func fieldPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}
