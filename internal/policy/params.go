package policy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

// paramCond is a condition on one ABI-decoded parameter (or, through "*",
// on every element of an array). The value is typed at load time from the
// function signature, so a comparison can never mix an address and a
// number.
type paramCond struct {
	path []int // parameter index, then tuple component indexes; -1 is "every element"
	kind byte  // 'n' number, 'a' address, 'b' bool, 'x' bytes or string
	op   string
	num  *big.Int
	str  string
	set  map[string]bool
	text string
}

func (c *compiler) param(path []any, d *ParamDoc, r *rule) (paramCond, bool) {
	pc := paramCond{op: d.Op, text: fmt.Sprintf("%s %s %s", d.Arg, d.Op, d.Value)}
	if !opNames[d.Op] {
		c.errf(at(path, "op"), "op %q: want eq, ne, lt, le, gt, ge, in or not_in", clipText(d.Op))
		return pc, false
	}
	if !r.hasFunction {
		return pc, false
	}
	var t *abi.Type
	for i, part := range strings.Split(d.Arg, ".") {
		if part == "*" {
			if t == nil || (t.T != abi.SliceTy && t.T != abi.ArrayTy) {
				c.errf(at(path, "arg"), "%q: * applies to an array", clipText(d.Arg))
				return pc, false
			}
			pc.path = append(pc.path, -1)
			t = t.Elem
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			c.errf(at(path, "arg"), "%q: want indexes like 1, 2.0 or 3.*", clipText(d.Arg))
			return pc, false
		}
		switch {
		case i == 0 && n < len(r.args):
			t = &r.args[n].Type
		case i > 0 && t.T == abi.TupleTy && n < len(t.TupleElems):
			t = t.TupleElems[n]
		default:
			c.errf(at(path, "arg"), "%q does not exist in %s", clipText(d.Arg), r.function)
			return pc, false
		}
		pc.path = append(pc.path, n)
	}
	switch t.T {
	case abi.UintTy, abi.IntTy:
		pc.kind = 'n'
	case abi.AddressTy:
		pc.kind = 'a'
	case abi.BoolTy:
		pc.kind = 'b'
	case abi.BytesTy, abi.FixedBytesTy, abi.StringTy:
		pc.kind = 'x'
	default:
		c.errf(at(path, "arg"), "%q is a %s: compare its elements (.*) or components", clipText(d.Arg), t)
		return pc, false
	}
	if pc.kind != 'n' && d.Op != "eq" && d.Op != "ne" && d.Op != "in" && d.Op != "not_in" {
		c.errf(at(path, "op"), "%s parameters compare with eq, ne, in or not_in", t)
		return pc, false
	}
	norm := func(p []any, s string) (string, *big.Int, bool) {
		switch pc.kind {
		case 'n':
			v, ok := new(big.Int).SetString(s, 10)
			if !ok {
				c.errf(p, "%q is not an integer", clipText(s))
			}
			return "", v, ok
		case 'a':
			a, ok := c.address(p, s)
			return a, nil, ok
		case 'b':
			if s != "true" && s != "false" {
				c.errf(p, "%q: want true or false", clipText(s))
				return "", nil, false
			}
			return s, nil, true
		}
		if t.T != abi.StringTy {
			s = strings.ToLower(s)
			if !strings.HasPrefix(s, "0x") {
				c.errf(p, "%q: bytes are written 0x…", clipText(s))
				return "", nil, false
			}
			if _, err := hex.DecodeString(s[2:]); err != nil {
				c.errf(p, "%q is not hex", clipText(s))
				return "", nil, false
			}
		}
		return s, nil, true
	}
	if d.Op == "in" || d.Op == "not_in" {
		if len(d.Set) == 0 || d.Value != "" {
			c.errf(at(path, "set"), "%s takes a set, not a value", d.Op)
			return pc, false
		}
		pc.set = map[string]bool{}
		for i, s := range d.Set {
			str, n, ok := norm(at(path, "set", i), s)
			if !ok {
				return pc, false
			}
			if n != nil {
				str = n.String()
			}
			pc.set[str] = true
		}
		return pc, true
	}
	if len(d.Set) > 0 {
		c.errf(at(path, "set"), "%s takes a value, not a set", d.Op)
		return pc, false
	}
	str, n, ok := norm(at(path, "value"), d.Value)
	pc.str, pc.num = str, n
	return pc, ok
}

// matchParams decodes data with the rule's arguments and checks every
// condition. Calldata that does not decode exactly (the arguments must
// re-encode to it: no trailing bytes, no dirty padding) never matches, so
// nothing rides along unjudged behind what the rule inspected.
func matchParams(r *rule, data []byte) bool {
	vals, err := r.args.UnpackValues(data[4:])
	if err != nil {
		return false
	}
	if again, err := r.args.Pack(vals...); err != nil || !bytes.Equal(again, data[4:]) {
		return false
	}
	for i := range r.params {
		pc := &r.params[i]
		if !pc.holds(reflect.ValueOf(vals[pc.path[0]]), pc.path[1:]) {
			return false
		}
	}
	return true
}

// holds walks the rest of the path: every element of an array must hold.
func (pc *paramCond) holds(v reflect.Value, rest []int) bool {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer && v.Type() != bigType {
		v = v.Elem()
	}
	if len(rest) > 0 {
		if rest[0] == -1 {
			if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
				return false
			}
			for i := 0; i < v.Len(); i++ {
				if !pc.holds(v.Index(i), rest[1:]) {
					return false
				}
			}
			return true
		}
		if v.Kind() != reflect.Struct || rest[0] >= v.NumField() {
			return false
		}
		return pc.holds(v.Field(rest[0]), rest[1:])
	}
	var key string
	switch pc.kind {
	case 'n':
		var n *big.Int
		switch {
		case v.Type() == bigType:
			n = v.Interface().(*big.Int)
		case v.CanUint():
			n = new(big.Int).SetUint64(v.Uint())
		case v.CanInt():
			n = big.NewInt(v.Int())
		default:
			return false
		}
		if pc.set != nil {
			key = n.String()
			break
		}
		return (&numCond{op: pc.op, val: pc.num}).match(n)
	case 'a':
		a, ok := v.Interface().(common.Address)
		if !ok {
			return false
		}
		key = strings.ToLower(a.Hex())
	case 'b':
		if v.Kind() != reflect.Bool {
			return false
		}
		key = strconv.FormatBool(v.Bool())
	case 'x':
		switch v.Kind() {
		case reflect.String:
			key = v.String()
		case reflect.Slice:
			key = "0x" + hex.EncodeToString(v.Bytes())
		case reflect.Array:
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			key = "0x" + hex.EncodeToString(b)
		default:
			return false
		}
	}
	switch pc.op {
	case "eq":
		return key == pc.str
	case "ne":
		return key != pc.str
	case "in":
		return pc.set[key]
	case "not_in":
		return !pc.set[key]
	}
	return false
}

var bigType = reflect.TypeOf((*big.Int)(nil))
