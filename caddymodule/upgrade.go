package routemetrics

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Upgraded requests: a response that turns the connection (or, over HTTP/2
// and HTTP/3, the stream) into a tunnel: 101 Switching Protocols (a
// WebSocket through reverse_proxy, which writes the 101 and then hijacks
// the connection), or a 2xx answer to CONNECT (RFC 9110 9.3.6; WebSockets
// over HTTP/2 and HTTP/3 use extended CONNECT, RFC 8441 / RFC 9220, and
// reverse_proxy answers them 200). What follows the header is no longer
// the request's response, so:
//
//   - the request is recorded when that header is written: counted once in
//     http_requests_total with its status, its latency the time to that
//     header, and it leaves http_requests_in_progress;
//   - the tunnel is counted apart, per namespace and endpoint:
//
//     <namespace>http_upgraded_connections_in_progress{endpoint}       gauge
//     <namespace>http_upgraded_connection_duration_seconds{endpoint}   histogram
//
//     the gauge while the tunnel is open, the histogram observing its
//     lifetime (from the upgrade until the handler returns, i.e. until
//     reverse_proxy closed both sides) with upgradedBounds.

// (ownUpgradedDuration and ownUpgradedInflight in own_families.go.)

// upgradedBounds are the lifetime buckets, in seconds: connections live
// from a second to hours, not milliseconds (1 s .. 1 h, then +Inf).
var upgradedBounds = []float64{1, 5, 10, 30, 60, 300, 600, 1800, 3600}

// registerUpgraded registers the upgraded-connection families of h (same
// shape on every reload, so libmetrics returns the same families).
func registerUpgraded(reg *lmRegistry, h *httpFamilies) error {
	spec := ownUpgradedDuration.spec(h.prefix)
	spec.bounds = upgradedBounds
	d, err := reg.register(spec)
	if err != nil {
		return err
	}
	g, err := ownUpgradedInflight.register(reg, h.prefix)
	if err != nil {
		return err
	}
	h.upgradedDuration, h.upgradedInflight = d, g
	return nil
}

// upgradedSeries is one route's pair in its namespace's upgraded families.
type upgradedSeries struct {
	duration *series
	inflight *int64 // the gauge's cell, updated with sync/atomic
}

// upgradedIn returns the route's series in h's upgraded families,
// resolving them on the route's first upgrade; nil if libmetrics refused.
// No lock, as in endpointSeries: racing first calls build pairs of the same
// series (libmetrics returns one series per label set), so either store is
// right.
func (rt *route) upgradedIn(h *httpFamilies) *upgradedSeries {
	if u := rt.ext.upgraded.Load(); u != nil {
		return u
	}
	if h.upgradedDuration == nil || h.upgradedInflight == nil {
		return nil
	}
	d, err := h.upgradedDuration.series([]string{rt.name})
	if err != nil {
		return nil
	}
	g, err := h.upgradedInflight.series([]string{rt.name})
	if err != nil {
		return nil
	}
	u := &upgradedSeries{duration: d, inflight: g.gaugeCell()}
	rt.ext.upgraded.Store(u)
	return u
}

// upgrades reports whether a final response with this status turns the
// request's connection or stream into a tunnel.
func upgrades(method string, code int) bool {
	return code == http.StatusSwitchingProtocols || (method == http.MethodConnect && code >= 200 && code <= 299)
}

// upgrade records the request at its upgrade (status code, latency d: the
// time to the upgrading header) and opens the tunnel's accounting.
func (t *tracker) upgrade(code int, d time.Duration) {
	if t.done {
		return
	}
	// The tunnel's gauge counts it before the request's gauge lets go,
	// and the request is recorded before that (finish): no scrape sees
	// the connection in neither gauge nor a gauge at 0 ahead of the count.
	t.tunnelAt = d
	if t.tunnel = t.recordRoute().upgradedIn(t.http); t.tunnel != nil {
		atomic.AddInt64(t.tunnel.inflight, 1)
	}
	t.finish(t.method, code, d)
	t.upgraded = true
}

// closeTunnel records the lifetime of an upgraded connection that ended
// at d since the request's start.
func (t *tracker) closeTunnel(d time.Duration) {
	if u := t.tunnel; u != nil {
		t.tunnel = nil
		u.duration.observe(int64(d - t.tunnelAt))
		atomic.AddInt64(u.inflight, -1) // after the count, as in finish
	}
}
