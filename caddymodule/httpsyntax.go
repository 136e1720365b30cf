package routemetrics

import "strings"

// Character classes of HTTP field syntax (RFC 9110): tokens, quoted
// strings, optional whitespace.

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS drops leading OWS (strings.TrimLeft with a cutset builds its
// character set on every call; the response path runs this).
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	return s
}

// isTchar: RFC 9110 token characters (a table: the scanner asks once per
// byte of every name and token).
func isTchar(c byte) bool { return tcharTable[c] }

var tcharTable = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
			strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
	}
	return t
}()

// isQdtext: RFC 9110 qdtext (HTAB, SP, visible ASCII except '"' and '\',
// obs-text).
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80
}

// isQuotedPair: the character after a backslash in a quoted-string.
func isQuotedPair(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E) || c >= 0x80
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
