package routemetrics

// stEntry is one parsed entry; strings point into the header value.
type stEntry struct {
	name        string
	desc        string // desc's token, or its quoted-string content as written
	descEscaped bool   // that quoted-string contains backslash escapes
	hasDesc     bool
	durNS       int64
	hasDur      bool
}

// stScanner walks the entries of one Server-Timing header value:
//
//	Server-Timing = #( metric-name *( OWS ";" OWS param ) )
//	param         = token OWS "=" OWS ( token / quoted-string )
//
// (W3C Server Timing, RFC 9110 lists: empty elements are allowed). Of the
// params, dur (milliseconds, a non-negative decimal) and desc are used; for
// a repeated param the first wins, as the spec says. An entry that does not
// parse, or whose dur is not a number in [0, 1 day], is skipped and sets
// bad; the scanner resumes after the next comma outside quotes.
type stScanner struct {
	s   string
	i   int
	bad bool
}

func (sc *stScanner) next(e *stEntry) bool {
	for {
		for sc.i < len(sc.s) && (sc.s[sc.i] == ',' || isOWS(sc.s[sc.i])) {
			sc.i++
		}
		if sc.i >= len(sc.s) {
			return false
		}
		*e = stEntry{}
		if sc.entry(e) {
			return true
		}
		sc.bad = true
		sc.skipToComma()
	}
}

func (sc *stScanner) entry(e *stEntry) bool {
	if e.name = sc.token(); e.name == "" {
		return false
	}
	for {
		sc.ows()
		if sc.i >= len(sc.s) || sc.s[sc.i] == ',' {
			return true
		}
		if sc.s[sc.i] != ';' {
			return false
		}
		sc.i++
		sc.ows()
		pname, v, escaped, ok := sc.param()
		if !ok {
			return false
		}
		switch {
		case asciiEqualFold(pname, "dur"):
			if e.hasDur {
				continue
			}
			ns, ok := parseDurMillis(v)
			if escaped || !ok {
				return false
			}
			e.durNS, e.hasDur = ns, true
		case asciiEqualFold(pname, "desc"):
			if !e.hasDesc {
				e.desc, e.descEscaped, e.hasDesc = v, escaped, true
			}
		}
	}
}

// param reads token OWS "=" OWS ( token / quoted-string ), as
// value returns it; ok is false if any part is missing.
func (sc *stScanner) param() (name, v string, escaped, ok bool) {
	if name = sc.token(); name == "" {
		return "", "", false, false
	}
	sc.ows()
	if sc.i >= len(sc.s) || sc.s[sc.i] != '=' {
		return "", "", false, false
	}
	sc.i++
	sc.ows()
	v, escaped, ok = sc.value()
	return name, v, escaped, ok
}

func (sc *stScanner) ows() {
	for sc.i < len(sc.s) && isOWS(sc.s[sc.i]) {
		sc.i++
	}
}

func (sc *stScanner) token() string {
	start := sc.i
	for sc.i < len(sc.s) && isTchar(sc.s[sc.i]) {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// value reads a token or a quoted-string (returning its content with any
// escapes left in place).
func (sc *stScanner) value() (v string, escaped, ok bool) {
	if sc.i < len(sc.s) && sc.s[sc.i] == '"' {
		start := sc.i + 1
		for j := start; j < len(sc.s); j++ {
			switch c := sc.s[j]; {
			case c == '"':
				sc.i = j + 1
				return sc.s[start:j], escaped, true
			case c == '\\':
				if j+1 >= len(sc.s) || !isQuotedPair(sc.s[j+1]) {
					return "", false, false
				}
				escaped = true
				j++
			case !isQdtext(c):
				return "", false, false
			}
		}
		return "", false, false // unterminated
	}
	v = sc.token()
	return v, false, v != ""
}

// skipToComma moves past the next comma that is not inside a quoted string.
func (sc *stScanner) skipToComma() {
	inQuote := false
	for ; sc.i < len(sc.s); sc.i++ {
		switch c := sc.s[sc.i]; {
		case inQuote && c == '\\':
			sc.i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			sc.i++
			return
		}
	}
}
