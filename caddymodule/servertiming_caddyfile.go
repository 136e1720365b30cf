package routemetrics

import (
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseServerTiming parses a server_timing block (the dispenser is on the
// server_timing token) and where each metric was declared.
func parseServerTiming(d *caddyfile.Dispenser) (*ServerTiming, []declared, error) {
	st := &ServerTiming{}
	var at []declared
	if d.NextArg() {
		return nil, nil, d.Errf("server_timing: unexpected %q; its settings go in a block", d.Val())
	}
	maxSet := false
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "strip":
			if st.Strip {
				return nil, nil, d.Err("server_timing: strip given twice")
			}
			if d.NextArg() {
				return nil, nil, d.Errf("server_timing: strip takes no argument; unexpected %q", d.Val())
			}
			st.Strip = true
		case "max_entries":
			if maxSet {
				return nil, nil, d.Err("server_timing: max_entries given twice")
			}
			n, err := intArg(d, "server_timing: max_entries", 1, maxMaxEntries)
			if err != nil {
				return nil, nil, err
			}
			st.MaxEntries, maxSet = n, true
		case "metric":
			pos := declared{file: d.File(), line: d.Line()}
			m, err := parseServerTimingMetric(d)
			if err != nil {
				return nil, nil, err
			}
			for _, prev := range st.Metrics {
				if prev.Name == m.Name {
					return nil, nil, fmt.Errorf("server_timing: metric %s declared twice in the same block, at %s", m.Name, pos.at())
				}
			}
			st.Metrics = append(st.Metrics, m)
			at = append(at, pos)
		default:
			return nil, nil, d.Errf("server_timing: unknown subdirective %q (expected strip, max_entries or metric)", sub)
		}
	}
	if len(st.Metrics) == 0 {
		return nil, nil, d.Err("server_timing: no metric block; say which entries to record, e.g. metric db { queries db_queries_total }")
	}
	return st, at, nil
}

func parseServerTimingMetric(d *caddyfile.Dispenser) (ServerTimingMetric, error) {
	var m ServerTimingMetric
	if !d.NextArg() {
		return m, d.Err("server_timing: metric needs the entry name it maps, e.g. metric db")
	}
	m.Name = d.Val()
	if !isToken(m.Name) {
		return m, d.Errf("server_timing: metric name %q must be a Server-Timing metric name (an HTTP token, e.g. db)", m.Name)
	}
	if d.NextArg() {
		return m, d.Errf("server_timing: metric %s: unexpected %q; its settings go in a block", m.Name, d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return m, d.Errf("server_timing: metric %s: %s given twice", m.Name, sub)
		}
		seen[sub] = true
		switch sub {
		case "queries", "duration":
			var name string
			if !d.AllArgs(&name) {
				return m, d.Errf("server_timing: metric %s: %s needs exactly one metric name", m.Name, sub)
			}
			if sub == "queries" {
				if err := validateCounterName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: queries: %v", m.Name, err)
				}
				m.Queries = name
			} else {
				if err := validateMetricName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: duration: %v", m.Name, err)
				}
				if err := validateHistogramName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
				}
				m.Duration = name
			}
		case "operations":
			ops := d.RemainingArgs()
			if len(ops) == 0 {
				return m, d.Errf("server_timing: metric %s: operations needs at least one operation, e.g. select insert", m.Name)
			}
			for _, op := range ops {
				if err := validateOperation(op); err != nil {
					return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
				}
				if slices.Contains(m.Operations, op) {
					return m, d.Errf("server_timing: metric %s: operation %s listed twice", m.Name, op)
				}
				m.Operations = append(m.Operations, op)
			}
			if len(m.Operations) > maxListedOperations {
				return m, d.Errf("server_timing: metric %s: %d operations, at most %d", m.Name, len(m.Operations), maxListedOperations)
			}
		case "max_operations":
			n, err := intArg(d, "server_timing: metric "+m.Name+": max_operations", 1, maxMaxOperations)
			if err != nil {
				return m, err
			}
			m.MaxOperations = n
		case "buckets":
			b, err := parseBuckets(d.RemainingArgs())
			if err != nil {
				return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
			}
			m.Buckets = b
		default:
			return m, d.Errf("server_timing: metric %s: unknown subdirective %q (expected queries, duration, operations, max_operations or buckets)", m.Name, sub)
		}
		if len(m.Operations) > 0 && m.MaxOperations != 0 {
			return m, d.Errf("server_timing: metric %s: give operations or max_operations, not both", m.Name)
		}
	}
	if m.Queries == "" && m.Duration == "" {
		return m, d.Errf("server_timing: metric %s records nothing; give it queries <name_total> and/or duration <name_seconds>", m.Name)
	}
	return m, nil
}
