package routemetrics

import (
	"fmt"
	"slices"
	"strings"
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
		if f := builtinClash(kindCounter, m.Queries, namespace); f != "" {
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
		if f := builtinClash(kindHistogram, m.Duration, namespace); f != "" {
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
