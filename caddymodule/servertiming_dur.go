package routemetrics

// parseDurMillis turns a dur value (milliseconds: digits, an optional
// fraction and exponent, no sign) into whole nanoseconds with integer
// arithmetic, so 3.2 is exactly 3200000 ns and sums stay exact. Digits
// beyond nanosecond precision are truncated. false for anything else,
// negative numbers, NaN and infinities included, and above one day.
func parseDurMillis(v string) (int64, bool) {
	const maxMant = 1e17 // keeps mant*10 within uint64
	var mant uint64
	exp, i, digits := 0, 0, 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		digits++
		if mant < maxMant {
			mant = mant*10 + uint64(v[i]-'0')
		} else {
			exp++
		}
	}
	if i < len(v) && v[i] == '.' {
		for i++; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			digits++
			if mant < maxMant {
				mant = mant*10 + uint64(v[i]-'0')
				exp--
			}
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		neg := false
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			neg = v[i] == '-'
			i++
		}
		e, edigits := 0, 0
		for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			edigits++
			if e < 1000 {
				e = e*10 + int(v[i]-'0')
			}
		}
		if edigits == 0 {
			return 0, false
		}
		if neg {
			e = -e
		}
		exp += e
	}
	if i != len(v) {
		return 0, false
	}
	if mant == 0 {
		return 0, true
	}
	p := exp + 6 // milliseconds -> nanoseconds
	var ns uint64
	switch {
	case p >= 0:
		for ; p > 0; p-- {
			if mant > maxDurationNS/10 {
				return 0, false
			}
			mant *= 10
		}
		ns = mant
	case p < -19:
		ns = 0
	default:
		for ; p < 0; p++ {
			mant /= 10
		}
		ns = mant
	}
	if ns > maxDurationNS {
		return 0, false
	}
	return int64(ns), true
}
