package routemetrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A request is counted exactly once, under the innermost route_metrics it
// passed through. The outermost handler takes a tracker, wraps the
// response writer and records when the chain returns (or panics); handlers
// nested inside only retarget the tracker, moving the in-flight count from
// the previous route's cell to theirs, and add their business counters.
//
// Trackers are pooled, so a request allocates nothing for its own
// accounting. A tracker goes back to the pool only when nothing can reach
// it any more: the request's vars table then holds recordedTracker instead
// (a route_metrics reached afterwards, in handle_errors, must still see
// the request as recorded), the wrapped response writer is dead once the
// handler has returned (net/http forbids using it afterwards), and the
// request body counter, which reverse_proxy's transport may still read
// from another goroutine, is allocated apart and never reused. Requests
// outside a Caddy server (no vars table) and requests whose handler
// panicked keep a tracker of their own.

// trackerVar is the key of the tracker in Caddy's per-request vars table.
// That table is a mutable map already in the request context, so attaching
// the tracker costs no request copy.
const trackerVar = "routemetrics.tracker"

// startTimeVar is where Caddy keeps the time it started handling the
// request (a time.Time with a monotonic reading, set before any handler
// runs; {http.request.duration} is measured from it).
const startTimeVar = "start_time"

type trackerCtxKey struct{}

// recordedTracker stands in the vars table for a tracker that went back to
// the pool: the request was recorded.
var recordedTracker = &tracker{done: true}

var trackerPool = sync.Pool{New: func() any { return new(tracker) }}

// inlineHandlers is how many handlers with business counters a tracker
// holds without allocating; a deeper chain spills the rest into a slice
// (allocated only then), so every handler's counters still count.
const inlineHandlers = 8

type tracker struct {
	http  *httpFamilies // namespace of the innermost handler that set one
	route *route        // innermost route so far (in http); its in-flight cell holds our +1

	// handlers whose business counters apply, outermost first: the first
	// inlineHandlers inline, the rest in moreHandlers (see handlerAt).
	handlers     [inlineHandlers]*RouteMetrics
	moreHandlers []*RouteMetrics
	nhandlers    int

	// done is set once the request was recorded; a route_metrics reached
	// afterwards (e.g. inside handle_errors) must not count it again.
	done bool

	rec    recorder
	body   *requestBody // wraps the request body, if it has one
	start  time.Time
	method string

	// The request's vars table (nil outside a Caddy server) and context,
	// where the replacer is looked up when first needed.
	vars map[string]any
	ctx  context.Context

	// Latency mode of the innermost route_metrics that set one, and the
	// time to the first byte (the final header) when the mode needs it.
	latency      latencyMode
	firstByte    time.Duration
	firstByteSet bool

	// Upgraded requests (upgrade.go): recorded at the upgrade; the
	// tunnel's lifetime is recorded when the outermost handler returns.
	upgraded bool
	tunnel   *upgradedSeries
	tunnelAt time.Duration // since start

	repl *caddy.Replacer // the request's (see replacer); reverse_proxy leaves upstream figures in it

	// Request ID (requestid.go): the header it travels in and its value,
	// set by the first route_metrics that has request_id, and the
	// response header's value (its own slice, see onHeader).
	reqIDHeader string
	reqID       string
	reqIDValue  []string

	// Server-Timing rules of the innermost route_metrics that has any, and
	// whether the final response headers were already read.
	st     *stConfig
	stDone bool
	// Extras staged for the single record call (Server-Timing entries are
	// read when the headers are written, before the request finishes).
	rr *requestRecord

	// Route templates (templates.go) of the innermost route_metrics, if it
	// has any: the handler, the URL whose path the upstream receives, the
	// path matched when the request reached it (t.route, which holds the
	// in-flight +1, is that match) and the route for no match.
	tplH    *RouteMetrics
	tplURL  *url.URL
	tplPath string
	tplBase *route
	// recRoute, once set by recordRoute, is where the request is recorded.
	recRoute *route
}

// trackerIn finds the tracker an enclosing route_metrics attached to r:
// in its vars table (vars, nil outside a Caddy server) or its context.
func trackerIn(vars map[string]any, r *http.Request) *tracker {
	if vars != nil {
		t, _ := vars[trackerVar].(*tracker)
		return t
	}
	t, _ := r.Context().Value(trackerCtxKey{}).(*tracker)
	return t
}

// startTracker starts tracking r: from the pool inside a Caddy server,
// where the vars table holds it (and Caddy's start time), else a tracker
// of its own in a derived request's context.
func startTracker(hf *httpFamilies, w http.ResponseWriter, r *http.Request, vars map[string]any) (*tracker, *http.Request) {
	var t *tracker
	if vars != nil {
		t = trackerPool.Get().(*tracker)
		t.vars = vars
		vars[trackerVar] = t
	} else {
		t = new(tracker)
		r = r.WithContext(context.WithValue(r.Context(), trackerCtxKey{}, t))
	}
	t.ctx = r.Context()
	t.http = hf
	t.method = r.Method
	if st, ok := vars[startTimeVar].(time.Time); ok {
		t.start = st
	} else {
		t.start = time.Now()
	}
	t.rec.ResponseWriter = w
	t.rec.t = t
	// A request without a body keeps its http.NoBody (reverse_proxy and
	// net/http treat it specially): net/http gives every request of
	// Content-Length 0 that one, so the length says it without comparing
	// interfaces. The counter is allocated apart from the pooled tracker:
	// reverse_proxy's transport may read the body after the request was
	// recorded.
	if r.Body != nil && r.ContentLength != 0 {
		t.body = &requestBody{ReadCloser: r.Body}
		r.Body = t.body
	}
	return t, r
}

// release returns a recorded tracker to the pool (see the comment at the
// top); trackers outside a Caddy server are left to the collector.
func (t *tracker) release() {
	vars := t.vars
	if vars == nil {
		return
	}
	vars[trackerVar] = recordedTracker
	*t = tracker{}
	trackerPool.Put(t)
}

// replacer is the request's replacer, looked up on first use (nil outside
// a Caddy server).
func (t *tracker) replacer() *caddy.Replacer {
	if t.repl == nil && t.ctx != nil {
		t.repl, _ = t.ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	}
	return t.repl
}

func (t *tracker) enter(rt *route) {
	atomic.AddInt64(rt.inflight, 1)
	t.route = rt
}

// retarget moves the request to a more specific route and to that route's
// namespace: the innermost route_metrics that sets a namespace owns the
// request, so every family the request feeds (requests, duration, bytes,
// in flight, upstream latency, upgraded connections) is that namespace's.
func (t *tracker) retarget(hf *httpFamilies, rt *route) {
	t.http = hf
	if rt == t.route {
		return
	}
	atomic.AddInt64(rt.inflight, 1)
	atomic.AddInt64(t.route.inflight, -1)
	t.route = rt
	t.recRoute = nil
}

func (t *tracker) addHandler(h *RouteMetrics) {
	if h.st != nil {
		t.st = h.st // innermost wins
	}
	if h.latency != latencyAuto {
		t.latency = h.latency // innermost wins
	}
	if len(h.rules) == 0 {
		return
	}
	for i := 0; i < t.nhandlers; i++ {
		if t.handlerAt(i) == h {
			return
		}
	}
	if t.nhandlers < inlineHandlers {
		t.handlers[t.nhandlers] = h
	} else {
		t.moreHandlers = append(t.moreHandlers, h)
	}
	t.nhandlers++
}

// handlerAt is the i-th handler (0 = outermost) whose counters apply.
func (t *tracker) handlerAt(i int) *RouteMetrics {
	if i < inlineHandlers {
		return t.handlers[i]
	}
	return t.moreHandlers[i-inlineHandlers]
}

// end is the outermost handler's last word on the request: it records the
// request (latency per the route's mode) unless an upgrade already did, in
// which case it records the tunnel's lifetime. The clock is read once,
// monotonic only (time.Since of a time with a monotonic reading).
func (t *tracker) end(status int) {
	d := time.Since(t.start)
	if t.upgraded {
		t.closeTunnel(d)
		return
	}
	if t.firstByteSet {
		d = t.firstByte
	}
	t.finish(t.method, status, d)
}

// finalHeader runs when the final response header is written (explicitly,
// by a first Write or by a first Flush): the response's first byte. An
// upgrading status records the request now; otherwise the time is kept
// if the request's latency is its time to first byte.
func (t *tracker) finalHeader(h http.Header, code int) {
	if upgrades(t.method, code) {
		t.upgrade(code, time.Since(t.start))
		return
	}
	if t.latency == latencyFirstByte || (t.latency == latencyAuto && isEventStream(h)) {
		t.firstByte, t.firstByteSet = time.Since(t.start), true
	}
}

// matchTemplates resolves h's templates on the request's current path and
// returns the route to count it under (base when none matches).
func (t *tracker) matchTemplates(h *RouteMetrics, hf *httpFamilies, base *route, u *url.URL) *route {
	t.tplH, t.tplURL, t.tplPath, t.tplBase = h, u, u.Path, base
	t.recRoute = nil
	if rt := h.templateRoute(hf, u.Path); rt != nil {
		return rt
	}
	return base
}

// recordRoute is the route the request is recorded under: t.route, unless
// a handler after the matching route_metrics rewrote the path in place
// (uri strip_prefix, rewrite): then the template the final path, the one
// the upstream received, matches. The in-flight gauge stays with t.route.
func (t *tracker) recordRoute() *route {
	if t.recRoute != nil {
		return t.recRoute
	}
	if t.tplH == nil || t.tplURL.Path == t.tplPath {
		return t.route
	}
	t.tplPath = t.tplURL.Path
	rt := t.tplH.templateRoute(t.http, t.tplPath)
	if rt == nil {
		rt = t.tplBase
	}
	if rt == nil {
		rt = t.route
	}
	// Later calls (Server-Timing at the headers, then the record) agree.
	t.tplH = nil
	t.recRoute = rt
	return rt
}

// finish records the request once and leaves the in-flight gauge.
func (t *tracker) finish(method string, status int, d time.Duration) {
	if t.done {
		return
	}
	t.done = true
	t.record(method, status, d)
	t.leave()
}

// leave takes the request out of its route's in-flight gauge. It runs only
// after the request is recorded: a scrape may then see a finishing request
// both in flight and counted, never in neither, so in-flight 0 means every
// request that ended is in the counts.
func (t *tracker) leave() {
	atomic.AddInt64(t.route.inflight, -1)
}

// record feeds everything the request counts for, in one crossing into
// libmetrics.
func (t *tracker) record(method string, status int, d time.Duration) {
	route := t.recordRoute()
	hostport, latency, proxied := t.upstream()
	rr := t.rr
	t.rr = nil
	if rr == nil && (proxied || t.reqID != "") {
		rr = acquireRecord()
	}
	if rr == nil {
		// Nothing beyond the request and its business counters: the plain
		// call, with the counters in a Go array of C pointers.
		var batch counterBatch
		for i := 0; i < t.nhandlers; i++ {
			h := t.handlerAt(i)
			for j := range h.rules {
				rule := &h.rules[j]
				if rule.matches(method, status) && !batch.add(rule.series) {
					rule.series.counterAdd(1) // batch full: rare, one extra crossing
				}
			}
		}
		route.record(methodOf(method), status, d, t.body.read(), t.rec.bytes, &batch)
		return
	}
	defer rr.release()
	for i := 0; i < t.nhandlers; i++ {
		h := t.handlerAt(i)
		for j := range h.rules {
			rule := &h.rules[j]
			if rule.matches(method, status) && !rr.addCounter(rule.series) {
				rule.series.counterAdd(1)
			}
		}
	}
	exemplar := t.reqID != "" && exemplarID(t.reqID) &&
		rr.setExemplar(exemplarLabel, t.reqID, t.start.Add(d).UnixNano())
	if proxied {
		if s := route.upstreamSeries(t.http, hostport); s != nil {
			rr.observe(s, int64(latency), exemplar)
		}
	}
	route.recordEx(methodOf(method), status, d, t.body.read(), t.rec.bytes, rr)
}

// onHeader runs just before the response headers go out (final or 1xx):
// the request ID overrides any copy the upstream echoed, Server-Timing is
// read once from the final headers and removed if configured.
func (t *tracker) onHeader(h http.Header, code int) {
	final := code >= 200 || code == http.StatusSwitchingProtocols
	if t.reqIDHeader != "" && final {
		t.setResponseID(h)
	}
	st := t.st
	if st == nil {
		return
	}
	if final && !t.stDone && !t.done && len(h[serverTimingHeader]) > 0 {
		t.stDone = true
		if t.rr == nil {
			t.rr = acquireRecord()
		}
		route := t.recordRoute()
		if t.rr != nil && st.process(h, route, t.rr) {
			if s := st.malformedSeries(route); s != nil {
				t.rr.observe(s, 1, false)
			}
		}
	}
	if st.strip {
		delete(h, serverTimingHeader)
	}
}

// statusFromError is the status Caddy's error handling will send for an
// error returned by the handler chain.
func statusFromError(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		return he.StatusCode
	}
	return http.StatusInternalServerError
}

// recorder observes the final status and the body bytes written. Flush,
// Hijack and friends reach the real writer through Unwrap, which
// http.ResponseController (used by reverse_proxy) follows.
type recorder struct {
	caddyhttp.ResponseWriterWrapper
	t           *tracker
	status      int
	bytes       uint64
	wroteHeader bool
}

func (rw *recorder) WriteHeader(code int) {
	// 1xx other than 101 are interim responses; the final one follows.
	if !rw.wroteHeader {
		final := code >= 200 || code == http.StatusSwitchingProtocols
		if rw.t != nil {
			rw.t.onHeader(rw.ResponseWriter.Header(), code)
		}
		if final {
			rw.status = code
			rw.wroteHeader = true
			if rw.t != nil {
				rw.t.finalHeader(rw.ResponseWriter.Header(), code)
			}
		}
	}
	rw.ResponseWriter.WriteHeader(code)
}

// implicitHeader is what a first Write without WriteHeader means: a 200,
// whose headers go out with the body.
func (rw *recorder) implicitHeader() {
	if rw.t != nil {
		rw.t.onHeader(rw.ResponseWriter.Header(), http.StatusOK)
	}
	rw.status = http.StatusOK
	rw.wroteHeader = true
	if rw.t != nil {
		rw.t.finalHeader(rw.ResponseWriter.Header(), http.StatusOK)
	}
}

// FlushError sends what is buffered; before any header that is the
// implicit 200's header, so it goes through implicitHeader first.
// http.ResponseController (reverse_proxy's streaming) finds it before
// unwrapping.
func (rw *recorder) FlushError() error {
	if !rw.wroteHeader {
		rw.implicitHeader()
	}
	return http.NewResponseController(rw.ResponseWriter).Flush()
}

// Flush is FlushError for callers that assert http.Flusher.
func (rw *recorder) Flush() { _ = rw.FlushError() }

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.implicitHeader()
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += uint64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's sendfile/splice path (used by
// file_server and reverse_proxy) while counting what it sent.
func (rw *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.implicitHeader()
	}
	n, err := rw.ResponseWriterWrapper.ReadFrom(src)
	if n > 0 {
		rw.bytes += uint64(n)
	}
	return n, err
}

// requestBody counts the request body bytes the handler chain reads
// (reverse_proxy, request_body, a FastCGI app...): bytes actually read,
// so a body nobody reads counts only what was read of it, and what
// net/http discards after the handler returns is not counted.
type requestBody struct {
	io.ReadCloser
	// Atomic: reverse_proxy's transport reads the body in its own
	// goroutine, which may still be reading when the request is recorded.
	n atomic.Uint64
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.n.Add(uint64(n))
	}
	return n, err
}

// read is the number of body bytes read so far (0 for no body).
func (b *requestBody) read() uint64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// isEventStream reports whether the response is Server-Sent Events
// (Content-Type text/event-stream, any case, parameters allowed).
func isEventStream(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	const sse = "text/event-stream"
	ct := trimOWS(v[0])
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false
	}
	rest := trimOWS(ct[len(sse):])
	return rest == "" || rest[0] == ';'
}

var (
	_ http.ResponseWriter = (*recorder)(nil)
	_ io.ReaderFrom       = (*recorder)(nil)
	_ http.Flusher        = (*recorder)(nil)
)
