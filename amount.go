package daoguard

import (
	"math/big"
	"strconv"
	"strings"
)

// MaxDecimals is the largest number of decimals an asset may declare. ERC-20
// decimals is a uint8, but nothing real uses more than 18 and a larger value
// only helps an attacker hide magnitudes.
const MaxDecimals = 36

// maxUint256 bounds every amount: nothing on an EVM chain can hold more.
var maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// ParseAmount converts a decimal string in an asset's display units ("1500.25")
// into an exact integer of base units (1500250000 for 6 decimals).
//
// The accepted form is deliberately narrow, because an amount that can be
// read two ways is an attack surface (units confusion): ASCII digits, at most
// one '.', digits on both sides of it, no sign, no exponent, no spaces, no
// thousands separators, no leading zeros, no more fraction digits than the
// asset has decimals, and a result that fits in a uint256. Floats never take
// part: the conversion is string → big.Int.
func ParseAmount(s string, decimals int) (*big.Int, error) {
	if decimals < 0 || decimals > MaxDecimals {
		return nil, Errorf(CodeInvalidAmount, "asset declares %d decimals; at most %d are supported", decimals, MaxDecimals)
	}
	if s == "" {
		return nil, Errorf(CodeInvalidAmount, "amount is empty")
	}
	if len(s) > 80 { // 78 digits of a uint256 plus a point and a digit; longer is never valid
		return nil, Errorf(CodeInvalidAmount, "amount is too long")
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if !allDigits(whole) || (hasPoint && !allDigits(frac)) {
		return nil, Errorf(CodeInvalidAmount, "amount %q is not a plain decimal number (digits and at most one '.', no sign or exponent)", s)
	}
	if len(whole) > 1 && whole[0] == '0' {
		return nil, Errorf(CodeInvalidAmount, "amount %q has leading zeros", s)
	}
	if len(frac) > decimals {
		return nil, Errorf(CodeInvalidAmount, "amount %q has %d decimal places; the asset has %d", s, len(frac), decimals)
	}
	digits := whole + frac + strings.Repeat("0", decimals-len(frac))
	v, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, Errorf(CodeInvalidAmount, "amount %q is not a number", s)
	}
	if v.Cmp(maxUint256) > 0 {
		return nil, Errorf(CodeInvalidAmount, "amount %q does not fit in 256 bits of base units", s)
	}
	return v, nil
}

// ParseBaseUnits parses a non-negative integer of base units (wei) given as a
// decimal string, with the same strictness as ParseAmount.
func ParseBaseUnits(s string) (*big.Int, error) {
	if strings.Contains(s, ".") {
		return nil, Errorf(CodeInvalidAmount, "value %q must be an integer number of base units", s)
	}
	return ParseAmount(s, 0)
}

// FormatAmount renders base units in display units with exactly the asset's
// number of decimals, trailing zeros trimmed ("1500.25", "7", "0.000001").
// It is the inverse of ParseAmount for every value ParseAmount accepts.
func FormatAmount(v *big.Int, decimals int) string {
	if v == nil {
		return ""
	}
	neg := v.Sign() < 0
	s := new(big.Int).Abs(v).String()
	if decimals > 0 {
		if len(s) <= decimals {
			s = strings.Repeat("0", decimals-len(s)+1) + s
		}
		whole, frac := s[:len(s)-decimals], strings.TrimRight(s[len(s)-decimals:], "0")
		s = whole
		if frac != "" {
			s += "." + frac
		}
	}
	if neg {
		s = "-" + s
	}
	return s
}

// AppendAmount appends FormatAmount(v, decimals) to b; for a value that
// fits in 64 bits it allocates nothing beyond b's growth.
func AppendAmount(b []byte, v *big.Int, decimals int) []byte {
	if v == nil {
		return b
	}
	if !v.IsUint64() {
		return append(b, FormatAmount(v, decimals)...)
	}
	var digits [20]byte
	s := strconv.AppendUint(digits[:0], v.Uint64(), 10)
	if decimals <= 0 {
		return append(b, s...)
	}
	if len(s) <= decimals {
		b = append(b, '0')
	} else {
		b = append(b, s[:len(s)-decimals]...)
	}
	frac := s[max(len(s)-decimals, 0):]
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if len(frac) == 0 {
		return b
	}
	b = append(b, '.')
	for i := len(s); i < decimals; i++ { // leading zeros of the fraction
		b = append(b, '0')
	}
	return append(b, frac...)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
