package cost

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Amount is an exact non-negative number of femto-dollars (10^-15 USD) in 128 bits.
type Amount struct{ hi, lo uint64 }

// mul is count x unit price, exact.
func mul(count, femto uint64) Amount {
	hi, lo := bits.Mul64(count, femto)
	return Amount{hi, lo}
}

// Add returns a + b.
func (a Amount) Add(b Amount) Amount {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	hi, _ := bits.Add64(a.hi, b.hi, carry)
	return Amount{hi, lo}
}

// IsZero reports a == 0.
func (a Amount) IsZero() bool { return a.hi == 0 && a.lo == 0 }

// divmod10 returns a / 10 and a % 10.
func (a Amount) divmod10() (Amount, uint64) {
	qhi, r := bits.Div64(0, a.hi, 10)
	qlo, r := bits.Div64(r, a.lo, 10)
	return Amount{qhi, qlo}, r
}

// FemtoPerUSDFloat is 10^15, exact as a double.
const FemtoPerUSDFloat = 1e15

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// Float64 is the USD amount as the nearest double (correctly rounded, as Python's float(Decimal)).
func (a Amount) Float64() float64 {
	if a.hi == 0 && a.lo <= 1<<53 {
		// Both operands are exact doubles, so the one IEEE division rounds correctly.
		return float64(a.lo) / FemtoPerUSDFloat
	}
	exact := a
	exp := 15
	for exp > 0 && !a.IsZero() {
		q, r := a.divmod10()
		if r != 0 {
			break
		}
		a, exp = q, exp-1
	}
	if a.hi == 0 && a.lo <= 1<<53 {
		// Both operands are exact doubles, so the one IEEE division rounds correctly.
		return float64(a.lo) / pow10[exp]
	}
	f, err := strconv.ParseFloat(exact.String(), 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// String is the exact USD amount in plain decimal notation without trailing zeros ("0.00672").
func (a Amount) String() string {
	if a.IsZero() {
		return "0"
	}
	var digits []byte
	for !a.IsZero() {
		var r uint64
		a, r = a.divmod10()
		digits = append(digits, byte('0'+r))
	}
	for len(digits) < 16 {
		digits = append(digits, '0')
	}
	for i, j := 0, len(digits)-1; i < j; i, j = i+1, j-1 {
		digits[i], digits[j] = digits[j], digits[i]
	}
	s := string(digits[:len(digits)-15]) + "." + string(digits[len(digits)-15:])
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// ParseAmount reads a non-negative decimal string of USD (at most 15 decimals).
func ParseAmount(s string) (Amount, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 15 || whole == "" {
		return Amount{}, false
	}
	var a Amount
	for _, c := range whole + frac + strings.Repeat("0", 15-len(frac)) {
		if c < '0' || c > '9' {
			return Amount{}, false
		}
		hi, lo := bits.Mul64(a.lo, 10)
		a = Amount{a.hi*10 + hi, lo}.Add(Amount{0, uint64(c - '0')})
	}
	return a, true
}
