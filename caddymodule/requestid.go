package routemetrics

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
)

// Request IDs: with `request_id <header>`, route_metrics makes sure every
// request has an ID in that header: the client's if it sent one (passed on
// unchanged), else Caddy's {http.request.uuid}, which also goes into
// Caddy's access log as "uuid". The request carries it to the upstream, the
// response carries it back to the client (overriding a copy the upstream
// echoed, so the client sees exactly one), and the ID becomes an
// OpenMetrics exemplar on the request counter, the latency bucket the
// request fell in and the upstream latency bucket:
//
//	http_request_duration_seconds_bucket{...,le="0.1"} 8 # {request_id="abc"} 0.054 1700000000.123
//
// so a slow bucket on a dashboard links to one request in the logs.

const (
	defaultRequestIDHeader = "X-Request-ID"
	// The exemplar's label name.
	exemplarLabel   = "request_id"
	replRequestUUID = "http.request.uuid"
)

// setRequestID gives the request its ID (the client's, or a new one) in
// header name (canonical), on the request (for the upstream) and on the
// response. The response's value is a slice of its own (or the request's
// own, when the client sent the ID), so onHeader can put it back without
// allocating.
func (t *tracker) setRequestID(name string, w http.ResponseWriter, r *http.Request) {
	var id string
	if v := r.Header[name]; len(v) > 0 && v[0] != "" {
		id = v[0]
		t.reqIDValue = v[:1:1]
	} else {
		if repl := t.replacer(); repl != nil {
			if v, ok := repl.Get(replRequestUUID); ok {
				id, _ = v.(string)
			}
		}
		if id == "" { // outside a Caddy server (no replacer)
			id = newUUID()
		}
		// One allocation for both headers; capacity 1 each, so an append
		// to one never writes into the other.
		vals := []string{id, id}
		r.Header[name] = vals[0:1:1]
		t.reqIDValue = vals[1:2:2]
	}
	w.Header()[name] = t.reqIDValue
	t.reqIDHeader, t.reqID = name, id
}

// setResponseID makes the request ID the response header's only value,
// overriding a copy the upstream echoed.
func (t *tracker) setResponseID(h http.Header) {
	if v := h[t.reqIDHeader]; len(v) == 1 && v[0] == t.reqID {
		return
	}
	t.reqIDValue[0] = t.reqID
	h[t.reqIDHeader] = t.reqIDValue
}

// exemplarID reports whether id may become an exemplar. libmetrics itself
// drops what OpenMetrics cannot carry exactly (invalid UTF-8, control
// characters, label sets over 128 characters). Braces are refused here
// although OpenMetrics allows them in label values: Python's
// prometheus_client (0.16, Debian's) ends an exemplar's labels at the first
// '}', so such an ID would make a valid exposition unreadable to it. The
// ID itself still travels in the headers unchanged.
func exemplarID(id string) bool {
	return !strings.ContainsAny(id, "{}")
}

// newUUID returns a random (version 4) UUID, as {http.request.uuid} does.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
