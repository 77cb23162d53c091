package screen

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// Mismatch is something a rationale says that the decoded action does not
// do: the units and asset-mismatch class (an intent that says "4 SOL"
// while the transaction moves 5% of a token's supply), or a recipient
// named in the text that is not the one paid.
type Mismatch struct {
	What string // "recipient", "asset", "amount"
	Said string // what the rationale says
	Does string // what the action does
}

func (m Mismatch) String() string {
	return fmt.Sprintf("the rationale names %s %s, the action %s", m.What, m.Said, m.Does)
}

var (
	addressRe = regexp.MustCompile(`\b0[xX][0-9a-fA-F]{40}\b`)
	// An amount and an asset symbol, either order: "1,500.25 USDC",
	// "4 SOL", "2.5k GHO", "USDC 1500". A symbol is written in capitals,
	// as symbols are; "500 people" is not an amount of anything.
	amountSym = regexp.MustCompile(`(?:^|[^\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s?([kKmM]\b)?\s?([A-Z][A-Z0-9]{1,9})\b`)
	symAmount = regexp.MustCompile(`\b([A-Z][A-Z0-9]{1,9})\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s?([kKmM]\b)?(?:[^\w.]|$)`)
)

// notAssets are capitalised words after numbers that name no token.
var notAssets = map[string]bool{"USD": true, "EUR": true, "GBP": true, "CHF": true, "UTC": true, "GMT": true, "AM": true, "PM": true,
	"PR": true, "ID": true, "BPS": true, "APY": true, "APR": true, "TVL": true, "KB": true, "MB": true, "GB": true, "X": true, "AIP": true, "ARFC": true}

// Consistency compares a transfer's rationale with what the transfer
// does: every address the text names must include the recipient, and an
// amount the text gives in the transfer's asset must be the amount moved
// (an amount given only in other assets is a mismatch of asset). A
// rationale that names nothing checkable is consistent.
func Consistency(rationale, to, asset string, amount *big.Int, decimals int) []Mismatch {
	var out []Mismatch
	if addrs := addressRe.FindAllString(rationale, 16); len(addrs) > 0 && to != "" {
		named := false
		for _, a := range addrs {
			named = named || strings.EqualFold(a, to)
		}
		if !named {
			out = append(out, Mismatch{"recipient", addrs[0], "pays " + to})
		}
	}
	if amount == nil || asset == "" {
		return out
	}
	type said struct {
		sym string
		v   *big.Rat
	}
	var amounts []said
	add := func(sym, whole, frac, mult string) {
		if notAssets[sym] {
			return
		}
		v, ok := new(big.Rat).SetString(strings.ReplaceAll(whole, ",", "") + frac)
		if !ok {
			return
		}
		switch strings.ToLower(mult) {
		case "k":
			v.Mul(v, big.NewRat(1_000, 1))
		case "m":
			v.Mul(v, big.NewRat(1_000_000, 1))
		}
		amounts = append(amounts, said{sym, v})
	}
	for _, m := range amountSym.FindAllStringSubmatch(rationale, 16) {
		add(m[4], m[1], m[2], m[3])
	}
	for _, m := range symAmount.FindAllStringSubmatch(rationale, 16) {
		add(m[1], m[2], m[3], m[4])
	}
	if len(amounts) == 0 {
		return out
	}
	moved := new(big.Rat).SetFrac(amount, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil))
	does := "moves " + trimZeros(moved.FloatString(decimals)) + " " + asset
	var same, other *said
	for i, a := range amounts {
		switch {
		case !strings.EqualFold(a.sym, asset):
			if other == nil {
				other = &amounts[i]
			}
		case a.v.Cmp(moved) == 0:
			return out // the amount moved is one the text gives
		case same == nil:
			same = &amounts[i]
		}
	}
	switch {
	case same != nil:
		out = append(out, Mismatch{"amount", trimZeros(same.v.FloatString(decimals)) + " " + same.sym, does})
	case other != nil:
		out = append(out, Mismatch{"asset", trimZeros(other.v.FloatString(18)) + " " + other.sym, does})
	}
	return out
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
