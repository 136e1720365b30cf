package routemetrics

import (
	"sync"
	"sync/atomic"
)

// A route's series in the plugin's own families beyond lm_http's
// (upstream latency, malformed Server-Timing, upgraded connections, cut
// responses) are resolved on the route's first request that needs them
// and kept here, so the request path finds them with one atomic load.

// routeExt holds a route's lazily resolved series in the plugin's other
// families.
type routeExt struct {
	// mu serialises the copy-on-write upstream cache's updates
	// (upstream.go: a new upstream copies the map). The other entries
	// need no lock (endpointSeries, upgradedIn).
	mu        sync.Mutex
	upstream  atomic.Pointer[upstreamCache]
	malformed atomic.Pointer[series] // server_timing_malformed_total{endpoint}
	upgraded  atomic.Pointer[upgradedSeries]
	aborted   atomic.Pointer[series] // http_responses_aborted_total{endpoint}
}

// endpointSeries returns the series {endpoint=rt} of f, kept in slot after
// the first call; nil if f is nil or libmetrics refused. No lock: two
// racing first calls get the same series from libmetrics, so either store
// is right.
func (rt *route) endpointSeries(slot *atomic.Pointer[series], f *family) *series {
	if s := slot.Load(); s != nil {
		return s
	}
	if f == nil {
		return nil
	}
	s, err := f.series([]string{rt.name})
	if err != nil {
		return nil
	}
	slot.Store(s)
	return s
}
