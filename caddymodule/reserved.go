package routemetrics

import (
	"fmt"
	"strings"
)

// builtinFamilies are the family names the registry exposes besides
// business counters ("" stands for the namespace prefix of the HTTP ones).
var builtinFamilies = []string{
	"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "go_memstats_heap_sys_bytes", "go_gc_cycles",
	"process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
	"process_open_fds", "process_max_fds", "process_start_time_seconds", "process_threads",
	"libmetrics_series_folded", "server_timing_malformed",
	"metrics_endpoint_refused", "metrics_endpoint_scrape_errors",
}

var builtinHTTPFamilies = []string{
	"http_requests", "http_request_duration_seconds", "http_response_size_bytes", "http_requests_in_progress",
	"http_upstream_duration_seconds",
	"http_request_size_bytes",
	"http_upgraded_connection_duration_seconds", "http_upgraded_connections_in_progress",
	"http_responses_aborted",
}

// checkReservedName refuses a business counter whose family would clash
// with a built-in one. OpenMetrics exposes counter x_total as family x, so
// go_goroutines_total collides with the go_goroutines gauge; libmetrics
// would refuse it at provision time, this says so at adapt time.
func checkReservedName(name, namespace string) error {
	family := strings.TrimSuffix(name, "_total")
	for _, f := range builtinFamilies {
		if family == f {
			return fmt.Errorf("counter name %q collides with the built-in metric %s (a counter x_total is exposed as family x)", name, f)
		}
	}
	for _, f := range builtinHTTPFamilies {
		if family == namespace+f {
			return fmt.Errorf("counter name %q collides with the built-in metric %s (a counter x_total is exposed as family x)", name, namespace+f)
		}
	}
	return nil
}

// httpFamilyOf returns the HTTP family of namespace that counter name
// would be exposed as, or "".
func httpFamilyOf(name, namespace string) string {
	family := strings.TrimSuffix(name, "_total")
	for _, f := range builtinHTTPFamilies {
		if family == namespace+f {
			return family
		}
	}
	return ""
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
