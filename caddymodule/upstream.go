package routemetrics

import (
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Upstream latency: for requests reverse_proxy handled, the time from
// sending the request upstream until the upstream's response headers
// arrived, apart from the total:
//
//	<namespace>http_upstream_duration_seconds{endpoint,upstream}
//
// reverse_proxy leaves it in the request's replacer
// (http.reverse_proxy.upstream.latency, a time.Duration, set after each
// successful round trip, so a retried request reports its last attempt)
// next to the upstream's address (http.reverse_proxy.upstream.hostport).
// The histogram has the namespace's buckets and native histogram settings
// and follows them across reloads (registry.go).

const (
	// durationFamilySuffix is libmetrics' request latency histogram (lm_http).
	durationFamilySuffix = "http_request_duration_seconds"
	replUpstreamLatency  = "http.reverse_proxy.upstream.latency"
	replUpstreamHostport = "http.reverse_proxy.upstream.hostport"

	// maxUpstreamsPerRoute bounds the Go-side cache of one route. The
	// family itself is capped like every other (familyMaxSeries, then the
	// overflow series); a route proxying to more upstreams than this still
	// records them, resolving each beyond the cache in libmetrics (a hash
	// lookup under its lock) on every request.
	maxUpstreamsPerRoute = 256
)

// upstreamCache maps an upstream's host:port to its series for one route.
// Copy-on-write: the request path does one atomic load and one map lookup
// with the replacer's string (no allocation, no lock, and no hashing in C,
// where lm_series_get would lock); a new upstream copies the map once.
// sync.Map would box the string key into an interface on every lookup.
type upstreamCache struct {
	fam *family
	m   map[string]*series
}

// proxyPreparedVar is the vars table entry reverse_proxy (Caddy v2.11)
// sets for every request it prepares for an upstream, before the first
// round trip (reverseproxy.Handler.prepareRequest, its PROXY protocol
// information); the proxied request shares the vars table. A request
// without it was never proxied, so its replacer holds no upstream latency
// and is not asked: a replacer miss runs through all of Caddy's
// placeholder providers, which costs more than the rest of the record.
// TestUpstreamGate proves the entry is there with a real reverse_proxy.
const proxyPreparedVar = "reverse_proxy.proxy_protocol_info"

// upstream reads what reverse_proxy left for the request; ok is false when
// it was not proxied (or no upstream answered).
func (t *tracker) upstream() (hostport string, latency time.Duration, ok bool) {
	if t.vars != nil {
		if _, prepared := t.vars[proxyPreparedVar]; !prepared {
			return "", 0, false
		}
	}
	return upstreamOf(t.replacer())
}

// upstreamOf reads what reverse_proxy left in the replacer; ok is false
// when the request was not proxied (or no upstream answered).
func upstreamOf(repl *caddy.Replacer) (hostport string, latency time.Duration, ok bool) {
	if repl == nil {
		return "", 0, false
	}
	v, found := repl.Get(replUpstreamLatency)
	if !found {
		return "", 0, false
	}
	latency, ok = v.(time.Duration)
	if !ok || latency < 0 {
		return "", 0, false
	}
	if hp, found := repl.Get(replUpstreamHostport); found {
		hostport, _ = hp.(string)
	}
	return hostport, latency, true
}

// upstreamSeries returns the route's series for hostport in h's upstream
// histogram, resolving it on first sight; nil if libmetrics refused.
func (rt *route) upstreamSeries(h *httpFamilies, hostport string) *series {
	fam := h.upstream.Load()
	if fam == nil {
		return nil
	}
	if c := rt.ext.upstream.Load(); c != nil && c.fam.p == fam.p {
		if s, ok := c.m[hostport]; ok {
			return s
		}
	}
	return rt.resolveUpstream(fam, hostport)
}

func (rt *route) resolveUpstream(fam *family, hostport string) *series {
	rt.ext.mu.Lock()
	defer rt.ext.mu.Unlock()
	c := rt.ext.upstream.Load()
	if c == nil || c.fam.p != fam.p {
		// First upstream of this route, or the histogram was replaced
		// (bucket change): start over with the new family.
		c = &upstreamCache{fam: fam}
	} else if s, ok := c.m[hostport]; ok {
		return s
	}
	s, err := fam.series([]string{rt.name, hostport})
	if err != nil {
		return nil
	}
	if len(c.m) < maxUpstreamsPerRoute {
		m := make(map[string]*series, len(c.m)+1)
		for k, v := range c.m {
			m[k] = v
		}
		m[hostport] = s
		rt.ext.upstream.Store(&upstreamCache{fam: fam, m: m})
	}
	return s
}
