package routemetrics

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

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
	if c.malformed, err = ownSTMalformed.register(reg, ""); err != nil {
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
				help: stDurationHelp(m.Name), labelNames: labels, bounds: m.Buckets, group: groupServerTiming}, native); err != nil {
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
	publishWith(&m.routes, old, rt, rs)
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
	publishWith(&rs.dyn, old, op, p)
	return p
}

// publishWith stores a copy of old (nil: empty) with k set to v in p: the
// copy-on-write step of the caches above, whose readers load p without a
// lock. The caller holds the lock that orders writers and read old from p
// under it.
func publishWith[K comparable, V any](p *atomic.Pointer[map[K]V], old *map[K]V, k K, v V) {
	next := make(map[K]V, 1)
	if old != nil {
		maps.Copy(next, *old)
	}
	next[k] = v
	p.Store(&next)
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
	return rt.endpointSeries(&rt.ext.malformed, c.malformed)
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
