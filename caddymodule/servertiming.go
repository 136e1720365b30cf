package routemetrics

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Server-Timing (W3C): the app behind Caddy reports its own timings in a
// response header, e.g.
//
//	Server-Timing: db;desc="select";dur=3.2, db;desc="insert";dur=7.5
//
// and route_metrics turns the entries it is configured for into metrics,
// per endpoint and operation (the entry's desc), so the app needs no
// Prometheus client:
//
//	db_queries_total{endpoint,operation}            counter, one per entry
//	db_query_duration_seconds{endpoint,operation}   histogram of dur (ms in the header)
//	server_timing_malformed_total{endpoint}         responses whose header was malformed
//
// The header is parsed when the response headers are written (before they
// reach the client, so `strip` can remove them), without allocating on the
// common path, and everything it yields goes into the request's single
// lm_route_record_ex call.

// ServerTiming configures which Server-Timing entries become metrics.
type ServerTiming struct {
	// Remove the Server-Timing header from the response before it reaches
	// the client (it tells the public about internals).
	Strip bool `json:"strip,omitempty"`
	// Entries read per response, at most 64; default 32. A response with
	// more has the rest ignored and counts as malformed.
	MaxEntries int `json:"max_entries,omitempty"`
	// One per entry name.
	Metrics []ServerTimingMetric `json:"metrics,omitempty"`
}

// ServerTimingMetric maps the entries named Name to metrics.
type ServerTimingMetric struct {
	// The entry's name in the header (a token, matched exactly), e.g. "db".
	Name string `json:"name"`
	// Counter (name ending in _total) that grows by one per entry.
	Queries string `json:"queries,omitempty"`
	// Histogram of the entries' dur, exposed in seconds.
	Duration string `json:"duration,omitempty"`
	// The operation label values allowed (lowercase; desc is matched
	// case-insensitively); any other desc is recorded as "_other". Empty:
	// the first MaxOperations distinct descs per endpoint get their own
	// value, later ones "_other".
	Operations []string `json:"operations,omitempty"`
	// Cap on distinct operations per endpoint when Operations is empty; at
	// most 256, default 16.
	MaxOperations int `json:"max_operations,omitempty"`
	// Histogram upper bounds in seconds; default libmetrics' latency
	// buckets (1 ms .. 10 s).
	Buckets []float64 `json:"buckets,omitempty"`
}

const (
	serverTimingHeader   = "Server-Timing"
	defaultMaxEntries    = 32
	maxMaxEntries        = 64
	defaultMaxOperations = 16
	maxMaxOperations     = 256
	maxListedOperations  = 64
	maxOperationLen      = 32
	// A Server-Timing header (all its lines together) longer than this is
	// ignored whole and counted as malformed.
	maxServerTimingBytes = 8 << 10
	// Longest dur accepted: one day, in nanoseconds. Anything longer is not
	// a query timing and is counted as malformed.
	maxDurationNS = 24 * 3600 * 1_000_000_000
	// The operation label of descs outside the allowed set.
	otherOperation        = "_other"
	malformedFamily       = "server_timing_malformed_total"
	malformedFamilyHelp   = "Responses whose Server-Timing header was malformed (bad syntax, bad dur, too long or too many entries); the bad parts were ignored."
	serverTimingLabelOp   = "operation"
	serverTimingLabelEndp = "endpoint"
)

// ------------------------------------------------------------ validation

func (st *ServerTiming) validate(namespace string) error {
	if st.MaxEntries < 0 || st.MaxEntries > maxMaxEntries {
		return fmt.Errorf("server_timing: max_entries %d must be between 1 and %d", st.MaxEntries, maxMaxEntries)
	}
	if len(st.Metrics) == 0 {
		return fmt.Errorf("server_timing: no metric block; say which entries to record, e.g. metric db { queries db_queries_total }")
	}
	seen := map[string]bool{}
	families := map[string]string{}
	for i := range st.Metrics {
		m := &st.Metrics[i]
		if err := m.validate(namespace); err != nil {
			return err
		}
		if seen[m.Name] {
			return fmt.Errorf("server_timing: metric %s declared twice", m.Name)
		}
		seen[m.Name] = true
		for _, f := range m.families() {
			if prev, ok := families[f]; ok {
				return fmt.Errorf("server_timing: metric %s and metric %s both record into %s", prev, m.Name, f)
			}
			families[f] = m.Name
		}
	}
	return nil
}

// families returns the OpenMetrics family names m records into.
func (m *ServerTimingMetric) families() []string {
	var out []string
	if m.Queries != "" {
		out = append(out, strings.TrimSuffix(m.Queries, "_total"))
	}
	if m.Duration != "" {
		out = append(out, m.Duration)
	}
	return out
}

func (m *ServerTimingMetric) validate(namespace string) error {
	if !isToken(m.Name) {
		return fmt.Errorf("server_timing: metric name %q must be a Server-Timing metric name (an HTTP token, e.g. db)", m.Name)
	}
	if m.Queries == "" && m.Duration == "" {
		return fmt.Errorf("server_timing: metric %s records nothing; give it queries <name_total> and/or duration <name_seconds>", m.Name)
	}
	if m.Queries != "" {
		if err := validateCounterName(m.Queries); err != nil {
			return fmt.Errorf("server_timing: metric %s: queries: %w", m.Name, err)
		}
		if f := builtinFamilyOf(strings.TrimSuffix(m.Queries, "_total"), namespace); f != "" {
			return fmt.Errorf("server_timing: metric %s: queries %q collides with the built-in metric %s (a counter x_total is exposed as family x)", m.Name, m.Queries, f)
		}
	}
	if m.Duration != "" {
		if err := validateMetricName(m.Duration); err != nil {
			return fmt.Errorf("server_timing: metric %s: duration: %w", m.Name, err)
		}
		if err := validateHistogramName(m.Duration); err != nil {
			return fmt.Errorf("server_timing: metric %s: %w", m.Name, err)
		}
		if f := builtinFamilyOf(m.Duration, namespace); f != "" {
			return fmt.Errorf("server_timing: metric %s: duration %q collides with the built-in metric %s", m.Name, m.Duration, f)
		}
		if m.Queries != "" && strings.TrimSuffix(m.Queries, "_total") == m.Duration {
			return fmt.Errorf("server_timing: metric %s: queries %s and duration %s would both be family %s", m.Name, m.Queries, m.Duration, m.Duration)
		}
	}
	if len(m.Operations) > 0 && m.MaxOperations != 0 {
		return fmt.Errorf("server_timing: metric %s: give operations or max_operations, not both", m.Name)
	}
	if m.MaxOperations < 0 || m.MaxOperations > maxMaxOperations {
		return fmt.Errorf("server_timing: metric %s: max_operations %d must be between 1 and %d", m.Name, m.MaxOperations, maxMaxOperations)
	}
	if len(m.Operations) > maxListedOperations {
		return fmt.Errorf("server_timing: metric %s: %d operations, at most %d", m.Name, len(m.Operations), maxListedOperations)
	}
	for i, op := range m.Operations {
		if err := validateOperation(op); err != nil {
			return fmt.Errorf("server_timing: metric %s: %w", m.Name, err)
		}
		if slices.Contains(m.Operations[:i], op) {
			return fmt.Errorf("server_timing: metric %s: operation %s listed twice", m.Name, op)
		}
	}
	if err := validateBuckets(m.Buckets); err != nil {
		return fmt.Errorf("server_timing: metric %s: %w", m.Name, err)
	}
	return nil
}

// validateHistogramName refuses names whose samples would look like another
// family's (x_total is a counter's, x_bucket/_count/_sum/_created a
// histogram's own samples).
func validateHistogramName(name string) error {
	for _, sfx := range []string{"_total", "_bucket", "_count", "_sum", "_created"} {
		if strings.HasSuffix(name, sfx) {
			hint := strings.TrimSuffix(name, sfx)
			if !strings.HasSuffix(hint, "_seconds") {
				hint += "_seconds"
			}
			return fmt.Errorf("duration %q is a histogram and must not end in %s (e.g. %s)", name, sfx, hint)
		}
	}
	return nil
}

// builtinFamilyOf returns the built-in family (caddyfile.go's lists) that
// family would clash with in namespace, or "".
func builtinFamilyOf(family, namespace string) string {
	for _, f := range builtinFamilies {
		if family == f {
			return f
		}
	}
	for _, f := range builtinHTTPFamilies {
		if family == namespace+f {
			return family
		}
	}
	return ""
}

func validateOperation(op string) error {
	if lower := strings.ToLower(op); lower != op && normalOperation(lower) {
		return fmt.Errorf("operation %q: write it in lowercase (%q); desc values are matched case-insensitively", op, lower)
	}
	if !normalOperation(op) {
		return fmt.Errorf("operation %q must be 1 to %d characters of a-z, 0-9, _ . : - starting with a letter", op, maxOperationLen)
	}
	return nil
}

// normalOperation: what an operation label value may be.
func normalOperation(op string) bool {
	if len(op) == 0 || len(op) > maxOperationLen || op[0] < 'a' || op[0] > 'z' {
		return false
	}
	for i := 0; i < len(op); i++ {
		if !opChar(op[i]) {
			return false
		}
	}
	return true
}

func opChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'
}

// ------------------------------------------------------------- provision

// stConfig is a provisioned ServerTiming.
type stConfig struct {
	strip      bool
	maxEntries int
	metrics    []*stMetric
	malformed  *family
}

type stMetric struct {
	name     string
	queries  *family // nil: not recorded
	duration *family
	ops      []string // listed operations (lowercase); nil: dynamic
	maxOps   int

	mu     sync.Mutex
	routes atomic.Pointer[map[*route]*stRouteSeries] // copy-on-write
}

// stPair is one (endpoint, operation)'s series; either may be nil.
type stPair struct {
	q, d *series
}

// stRouteSeries holds one route's series of one metric: the listed
// operations (index-aligned) and "_other", or, without a list, the
// operations seen so far (copy-on-write, at most maxOps).
type stRouteSeries struct {
	listed []stPair
	other  stPair
	mu     sync.Mutex
	dyn    atomic.Pointer[map[string]stPair]
}

// provision registers the families; duration histograms get native
// buckets as native asks (nil: classic only), with warnings when one
// cannot show that resolution until a restart (nativeFor).
func (st *ServerTiming) provision(reg *lmRegistry, native *nativeSpec) (*stConfig, []string, error) {
	c := &stConfig{strip: st.Strip, maxEntries: st.MaxEntries}
	if c.maxEntries == 0 {
		c.maxEntries = defaultMaxEntries
	}
	var err error
	var warnings []string
	if c.malformed, err = reg.registerServerTimingCounter(malformedFamily, malformedFamilyHelp, []string{serverTimingLabelEndp}); err != nil {
		return nil, nil, err
	}
	labels := serverTimingLabels
	for i := range st.Metrics {
		m := &st.Metrics[i]
		sm := &stMetric{name: m.Name, ops: slices.Clone(m.Operations), maxOps: m.MaxOperations}
		if sm.maxOps == 0 {
			sm.maxOps = defaultMaxOperations
		}
		if m.Queries != "" {
			if sm.queries, err = reg.registerServerTimingCounter(m.Queries, stQueriesHelp(m.Name), labels); err != nil {
				return nil, warnings, err
			}
		}
		if m.Duration != "" {
			// Changed in place when a reload changes the buckets.
			var w string
			if sm.duration, w, err = registerLatencyHistogram(reg, familySpec{name: m.Duration,
				help: stDurationHelp(m.Name), labelNames: labels, bounds: m.Buckets, serverTiming: true}, native); err != nil {
				return nil, warnings, err
			}
			if w != "" {
				warnings = append(warnings, w)
			}
		}
		c.metrics = append(c.metrics, sm)
	}
	return c, warnings, nil
}

// serverTimingLabels are the label names of the Server-Timing families.
var serverTimingLabels = []string{serverTimingLabelEndp, serverTimingLabelOp}

func stQueriesHelp(entry string) string {
	return fmt.Sprintf("Server-Timing %q entries reported by the upstream, by endpoint and operation (the entry's desc).", entry)
}

func stDurationHelp(entry string) string {
	return fmt.Sprintf("Durations (dur) of Server-Timing %q entries reported by the upstream, in seconds.", entry)
}

func (m *stMetric) pair(endpoint, op string) (stPair, error) {
	var p stPair
	var err error
	if m.queries != nil {
		if p.q, err = m.queries.series([]string{endpoint, op}); err != nil {
			return p, err
		}
	}
	if m.duration != nil {
		if p.d, err = m.duration.series([]string{endpoint, op}); err != nil {
			return p, err
		}
	}
	return p, nil
}

// routeSeries returns rt's series of m, resolving the listed operations on
// the route's first Server-Timing entry; nil if libmetrics refused.
func (m *stMetric) routeSeries(rt *route) *stRouteSeries {
	if mp := m.routes.Load(); mp != nil {
		if rs, ok := (*mp)[rt]; ok {
			return rs
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.routes.Load()
	if old != nil {
		if rs, ok := (*old)[rt]; ok {
			return rs
		}
	}
	rs := &stRouteSeries{listed: make([]stPair, len(m.ops))}
	var err error
	for i, op := range m.ops {
		if rs.listed[i], err = m.pair(rt.name, op); err != nil {
			return nil
		}
	}
	if rs.other, err = m.pair(rt.name, otherOperation); err != nil {
		return nil
	}
	next := make(map[*route]*stRouteSeries, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[rt] = rs
	m.routes.Store(&next)
	return rs
}

// pairFor maps an entry's desc to its operation's series.
func (rs *stRouteSeries) pairFor(m *stMetric, rt *route, e *stEntry) stPair {
	if !e.hasDesc || e.descEscaped || len(e.desc) == 0 || len(e.desc) > maxOperationLen {
		return rs.other
	}
	if m.ops != nil {
		for i, op := range m.ops {
			if asciiEqualFold(e.desc, op) {
				return rs.listed[i]
			}
		}
		return rs.other
	}
	var buf [maxOperationLen]byte
	n := len(e.desc)
	for i := 0; i < n; i++ {
		c := e.desc[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !opChar(c) {
			return rs.other
		}
		buf[i] = c
	}
	if buf[0] < 'a' || buf[0] > 'z' {
		return rs.other
	}
	if mp := rs.dyn.Load(); mp != nil {
		if p, ok := (*mp)[string(buf[:n])]; ok { // no allocation: map index by []byte conversion
			return p
		}
	}
	return rs.addOperation(m, rt, string(buf[:n]))
}

func (rs *stRouteSeries) addOperation(m *stMetric, rt *route, op string) stPair {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := rs.dyn.Load()
	if old != nil {
		if p, ok := (*old)[op]; ok {
			return p
		}
		if len(*old) >= m.maxOps {
			return rs.other
		}
	}
	p, err := m.pair(rt.name, op)
	if err != nil {
		return rs.other
	}
	next := make(map[string]stPair, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[op] = p
	rs.dyn.Store(&next)
	return p
}

// metric finds the configuration for an entry name.
func (c *stConfig) metric(name string) *stMetric {
	for _, m := range c.metrics {
		if m.name == name {
			return m
		}
	}
	return nil
}

// malformedSeries returns server_timing_malformed_total{endpoint=rt}.
func (c *stConfig) malformedSeries(rt *route) *series {
	if s := rt.ext.malformed.Load(); s != nil {
		return s
	}
	s, err := c.malformed.series([]string{rt.name})
	if err != nil {
		return nil
	}
	rt.ext.malformed.Store(s)
	return s
}

// process reads the response's Server-Timing lines into rr for route rt
// and reports whether any of it was malformed. Entries beyond maxEntries
// and headers longer than maxServerTimingBytes are ignored (and malformed).
func (c *stConfig) process(h http.Header, rt *route, rr *requestRecord) (malformed bool) {
	vals := h[serverTimingHeader]
	if len(vals) == 0 {
		return false
	}
	total := 0
	for _, v := range vals {
		total += len(v)
	}
	if total > maxServerTimingBytes {
		return true
	}
	entries := 0
	var e stEntry
	for _, v := range vals {
		sc := stScanner{s: v}
		for sc.next(&e) {
			if entries++; entries > c.maxEntries {
				return true
			}
			m := c.metric(e.name)
			if m == nil {
				continue // an entry nobody asked for (cache, total, ...): not an error
			}
			rs := m.routeSeries(rt)
			if rs == nil {
				continue
			}
			p := rs.pairFor(m, rt, &e)
			if p.q != nil {
				rr.observe(p.q, 1, false)
			}
			if p.d != nil && e.hasDur {
				rr.observe(p.d, e.durNS, false)
			}
		}
		malformed = malformed || sc.bad
	}
	return malformed
}

// ---------------------------------------------------------------- parser

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
		pname := sc.token()
		if pname == "" {
			return false
		}
		sc.ows()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '=' {
			return false
		}
		sc.i++
		sc.ows()
		v, escaped, ok := sc.value()
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

// ------------------------------------------------------- character classes

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

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
