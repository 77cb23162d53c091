package policy

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// CEL conditions cover what the built-in matchers miss. An expression sees
// the facts of one item (see docs/POLICY.md for the list) and must return a
// bool; it runs under a cost limit, and an error or a non-bool result
// denies the whole action.

// celCostLimit bounds one evaluation (CEL's abstract cost units): enough
// for any comparison or list membership test a policy needs, and a hard
// stop for a quadratic comprehension over a large list.
const celCostLimit = 10_000

var celVars = []cel.EnvOption{
	cel.Variable("principal_id", cel.StringType),
	cel.Variable("principal_kind", cel.StringType),
	cel.Variable("roles", cel.ListType(cel.StringType)),
	cel.Variable("account", cel.StringType),
	cel.Variable("action", cel.StringType), // transfer | approval | call
	cel.Variable("asset", cel.StringType),
	cel.Variable("amount", cel.DoubleType), // display units of asset; 0 if none
	cel.Variable("usd", cel.DoubleType),    // the whole action's USD value; -1 if unpriced
	cel.Variable("to", cel.StringType),     // counterparty
	cel.Variable("target", cel.StringType),
	cel.Variable("selector", cel.StringType), // 0x12345678, "" if none
	cel.Variable("value", cel.DoubleType),    // native value in whole coins
	cel.Variable("operation", cel.StringType),
	cel.Variable("new_recipient", cel.BoolType),
	cel.Variable("in_batch", cel.BoolType),
	cel.Variable("hour", cel.IntType), // 0-23 UTC
	cel.Variable("weekday", cel.StringType),
}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

type celCond struct {
	src     string
	prg     cel.Program
	usesUSD bool // reads usd: without a trusted price the rule fails closed to approval
}

func compileCEL(src string) (*celCond, error) {
	celEnvOnce.Do(func() { celEnv, celEnvErr = cel.NewEnv(celVars...) })
	if celEnvErr != nil {
		return nil, celEnvErr
	}
	if len(src) > 4096 {
		return nil, fmt.Errorf("the expression is longer than 4096 bytes")
	}
	ast, iss := celEnv.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL: %v", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("CEL: the expression is a %s, want bool", ast.OutputType())
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("CEL: %v", err)
	}
	usesUSD := false
	for _, id := range ast.NativeRep().ReferenceMap() {
		if id.Name == "usd" {
			usesUSD = true
		}
	}
	return &celCond{src: src, prg: prg, usesUSD: usesUSD}, nil
}

// celFacts is an item's facts as a CEL activation, without building a map.
type celFacts struct {
	vals [17]any
}

var celIndex = func() map[string]int {
	m := map[string]int{}
	names := []string{"principal_id", "principal_kind", "roles", "account", "action", "asset", "amount", "usd", "to", "target", "selector", "value", "operation", "new_recipient", "in_batch", "hour", "weekday"}
	for i, n := range names {
		m[n] = i
	}
	return m
}()

func (f *celFacts) ResolveName(name string) (any, bool) {
	i, ok := celIndex[name]
	if !ok {
		return nil, false
	}
	return f.vals[i], true
}

func (f *celFacts) Parent() interpreter.Activation { return nil }

func (c *celCond) eval(f *celFacts) (bool, error) {
	out, _, err := c.prg.Eval(f)
	if err != nil {
		return false, fmt.Errorf("CEL %q: %v", c.src, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("CEL %q returned %v, not a bool", c.src, out.Type())
	}
	return bool(b), nil
}
