package routemetrics

// The families this plugin registers itself, beside those libmetrics makes
// (a namespace's lm_http families, libmetrics_series_folded_total and the
// process_* metrics, which libmetrics checks on its own: lm_builtin_clash).
// Registration reads each one's name, type, help and labels from this
// table, and the check of a configured name (builtinClash) reads the same
// table, so a family added here is reserved without more code.

// ownID names one entry of ownFamilies.
type ownID int

const (
	ownGoGoroutines ownID = iota
	ownGoThreads
	ownGoHeapAlloc
	ownGoHeapSys
	ownGoGCCycles
	ownRefused
	ownScrapeErrors
	ownSTMalformed
	ownUpstream
	ownUpgradedDuration
	ownUpgradedInflight
	ownAborted
	numOwnFamilies
)

// ownFamily is one family of the plugin's own.
type ownFamily struct {
	kind familyKind
	// The name; for a family of every namespace (perNamespace), the part
	// after the namespace prefix.
	name         string
	perNamespace bool
	help         string
	labels       []string
	// Where the status page lists it (lm_family_kind).
	group     familyGroup
	maxSeries int // 0: libmetrics' default cap
}

var ownFamilies = [numOwnFamilies]ownFamily{
	ownGoGoroutines: {kind: kindGauge, name: "go_goroutines", group: groupRuntime,
		help: "Number of goroutines that currently exist."},
	ownGoThreads: {kind: kindGauge, name: "go_threads", group: groupRuntime,
		help: "Number of OS threads the Go runtime currently uses."},
	ownGoHeapAlloc: {kind: kindGauge, name: "go_memstats_heap_alloc_bytes", group: groupRuntime,
		help: "Bytes of allocated heap objects (MemStats.HeapAlloc)."},
	ownGoHeapSys: {kind: kindGauge, name: "go_memstats_heap_sys_bytes", group: groupRuntime,
		help: "Bytes of heap memory obtained from the OS (MemStats.HeapSys)."},
	ownGoGCCycles: {kind: kindCounter, name: "go_gc_cycles_total", group: groupRuntime,
		help: "Number of completed GC cycles."},
	ownRefused: {kind: kindCounter, name: "metrics_endpoint_refused_total", group: groupRuntime,
		labels: []string{"reason"},
		help:   "Requests metrics_endpoint answered with 403, by reason: address (client outside loopback, the private ranges and allow), forwarded (forwarding headers from a peer that is not a trusted proxy), forwarded_chain (a trusted proxy's headers name a client that is not allowed or not an address)."},
	ownScrapeErrors: {kind: kindCounter, name: "metrics_endpoint_scrape_errors_total", group: groupRuntime,
		labels: []string{"reason"},
		help:   "metrics_endpoint responses that failed, by reason: start (answered 500), render or write (aborted mid-body)."},
	ownSTMalformed: {kind: kindCounter, name: "server_timing_malformed_total", group: groupServerTiming,
		labels: []string{serverTimingLabelEndp}, maxSeries: familyMaxSeries,
		help: "Responses whose Server-Timing header was malformed (bad syntax, bad dur, too long or too many entries); the bad parts were ignored."},
	ownUpstream: {kind: kindHistogram, name: "http_upstream_duration_seconds", perNamespace: true, group: groupHTTP,
		labels: []string{"endpoint", "upstream"}, maxSeries: familyMaxSeries,
		help: "Time from sending a proxied request upstream until the upstream's response headers arrived (reverse_proxy), in seconds."},
	ownUpgradedDuration: {kind: kindHistogram, name: "http_upgraded_connection_duration_seconds", perNamespace: true, group: groupHTTP,
		labels: []string{"endpoint"}, maxSeries: familyMaxSeries,
		help: "Lifetime of upgraded connections (WebSocket and other tunnels: 101 Switching Protocols or a 2xx answer to CONNECT), from the upgrade until the tunnel closed, in seconds."},
	ownUpgradedInflight: {kind: kindGauge, name: "http_upgraded_connections_in_progress", perNamespace: true, group: groupHTTP,
		labels: []string{"endpoint"}, maxSeries: familyMaxSeries,
		help: "Upgraded connections (WebSocket and other tunnels) currently open, by endpoint."},
	ownAborted: {kind: kindCounter, name: "http_responses_aborted_total", perNamespace: true, group: groupHTTP,
		labels: []string{"endpoint"}, maxSeries: familyMaxSeries,
		help: "HTTP responses with a status below 500 cut off after their status line was sent (the handler chain failed mid-response, e.g. the upstream died mid-body), by endpoint; also counted in http_requests_total with that status. Failed requests = 5xx + this."},
}

// nameIn is the family's name in namespace prefix (for a family of every
// namespace; the others ignore prefix).
func (id ownID) nameIn(prefix string) string {
	f := &ownFamilies[id]
	if f.perNamespace {
		return prefix + f.name
	}
	return f.name
}

// spec is what registers the family in namespace prefix.
func (id ownID) spec(prefix string) familySpec {
	f := &ownFamilies[id]
	return familySpec{kind: f.kind, name: id.nameIn(prefix), help: f.help, labelNames: f.labels,
		maxSeries: f.maxSeries, group: f.group}
}

// register registers (or gets back, on reload) the family in namespace
// prefix.
func (id ownID) register(reg *lmRegistry, prefix string) (*family, error) {
	return reg.register(id.spec(prefix))
}
