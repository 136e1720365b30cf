package routemetrics

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// RouteMetrics (http.handlers.route_metrics) records RED metrics for the
// requests it wraps under a route name taken from the configuration, never
// from the request path, so the label set stays bounded:
//
//	<namespace>http_requests_total{method,endpoint,status}
//	<namespace>http_request_duration_seconds{method,endpoint,status}
//	<namespace>http_response_size_bytes_total{method,endpoint,status}
//	<namespace>http_request_size_bytes_total{method,endpoint,status}
//	<namespace>http_requests_in_progress{endpoint}
//
// Handlers nest: put one at site level and more inside handle blocks; each
// request is counted exactly once, under the innermost name it reached.
type RouteMetrics struct {
	// Value of the endpoint label. Empty means "other", the name for
	// requests no more specific route_metrics covers.
	Name string `json:"name,omitempty"`

	// Prefix for the four HTTP metric names, e.g. "shop_". Empty: a
	// handler nested in another route_metrics records into the enclosing
	// handler's namespace; an outermost one uses no prefix.
	Namespace string `json:"namespace,omitempty"`

	// Latency histogram upper bounds in seconds for this namespace; finite,
	// positive, strictly increasing, at most 64. Empty: libmetrics'
	// defaults (1 ms .. 10 s). All handlers of one namespace should agree;
	// the Caddyfile adapter insists on it.
	Buckets []float64 `json:"buckets,omitempty"`

	// Prometheus native histograms beside the classic buckets of the
	// latency histograms this block declares: request and upstream latency
	// of its namespace (which, like its buckets, all the namespace's
	// handlers should agree on) and its Server-Timing durations. Omitted:
	// on, schema 3, at most 160 buckets.
	NativeHistograms *NativeHistograms `json:"native_histograms,omitempty"`

	// Business counters fed by the requests this handler counts.
	Counters []BusinessCounter `json:"counters,omitempty"`

	// Header that carries the request ID, e.g. "X-Request-ID": taken from
	// the client or generated ({http.request.uuid}), passed to the upstream
	// and back to the client, and attached to the metrics as an
	// OpenMetrics exemplar. Empty: no request IDs, no exemplars. The first
	// route_metrics on a request's path that sets it decides.
	RequestID string `json:"request_id,omitempty"`

	// Server-Timing entries of the response to record; the innermost
	// route_metrics that has this block decides for a request.
	ServerTiming *ServerTiming `json:"server_timing,omitempty"`

	// What the latency histogram measures: "complete" (until the handler
	// chain returns, i.e. the whole response was written) or "first_byte"
	// (until the final response header was written: the first Write,
	// WriteHeader or Flush). Empty: complete, except for Server-Sent
	// Events (Content-Type text/event-stream), whose streams are open for
	// minutes and are recorded at their first byte. The innermost
	// route_metrics that sets it decides for a request. Upgraded requests
	// (WebSockets) always record the time to the upgrade.
	Latency string `json:"latency,omitempty"`

	// Path of an OpenAPI 3.x document (JSON, or YAML), e.g. the
	// /openapi.json a FastAPI app serves, saved to a file: every key of
	// its "paths" object becomes a route template (templates.go). Read
	// when the configuration is loaded, so a reload picks up a changed
	// file; a missing or malformed one fails the load. A relative path
	// is relative to the working directory (the Caddyfile adapter makes it
	// relative to the Caddyfile).
	OpenAPI string `json:"openapi,omitempty"`

	// Route templates written inline, in Starlette's syntax: "/items/{id}",
	// "/files/{file_path:path}" (libmetrics.h, "route template matcher").
	// One whose path without convertors equals a path of the OpenAPI
	// document replaces it (FastAPI writes "{file_path:path}" as
	// "{file_path}" there).
	//
	// With templates, a request whose path (as the upstream receives it)
	// matches one is counted under endpoint=<the template, exactly as
	// written>; in-flight, upstream latency, Server-Timing metrics,
	// business counters and exemplars follow it. A path that matches none
	// keeps this handler's name. At most 500 templates, spec included.
	Templates []string `json:"templates,omitempty"`

	// The status label of the namespace's HTTP families is the status
	// class ("2xx") instead of the code (shape.go: a namespace-wide
	// setting, fixed when the namespace is first registered).
	StatusClasses bool `json:"status_classes,omitempty"`

	// The latency histogram's labels: ["method","endpoint","status"] (the
	// default) or ["method","endpoint"], as the instrumentator's
	// histogram. Namespace-wide, like StatusClasses.
	LatencyLabels []string `json:"latency_labels,omitempty"`

	http     *httpFamilies
	latency  latencyMode
	route    *route
	rules    []counterRule
	st       *stConfig
	acquired bool
	logger   *zap.Logger
	// RequestID in canonical form, the header map's key.
	reqIDKey string
	// This handler's route in the namespace it last inherited (routeIn);
	// a pointer, so the struct stays comparable in tests.
	inherited *atomic.Pointer[inheritedRoute]

	// Templates compiled at provision, and their routes in h.http
	// (index-aligned).
	tpl       *templateSet
	tplRoutes []*route
}

// defaultRouteName labels requests that only an unnamed route_metrics
// covers.
const defaultRouteName = "other"

// CaddyModule returns the Caddy module information.
func (*RouteMetrics) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.route_metrics",
		New: func() caddy.Module { return new(RouteMetrics) },
	}
}

func (h *RouteMetrics) routeName() string {
	if h.Name == "" {
		return defaultRouteName
	}
	return h.Name
}

// Validate checks the configuration with the same rules as the C library.
func (h *RouteMetrics) Validate() error {
	if err := validateNamespace(h.Namespace); err != nil {
		return err
	}
	if err := validateBuckets(h.Buckets); err != nil {
		return err
	}
	if err := h.NativeHistograms.validate(); err != nil {
		return err
	}
	if err := validateLatencyLabels(h.LatencyLabels); err != nil {
		return err
	}
	seen := make(map[string]bool, len(h.Counters))
	for i := range h.Counters {
		c := &h.Counters[i]
		if err := c.validate(); err != nil {
			return err
		}
		if err := checkReservedName(c.Name, h.Namespace); err != nil {
			return err
		}
		if seen[c.Name] {
			return fmt.Errorf("counter %s declared twice in one route_metrics", c.Name)
		}
		seen[c.Name] = true
	}
	if h.RequestID != "" && !isToken(h.RequestID) {
		return fmt.Errorf("request_id: %q is not a valid header name", h.RequestID)
	}
	if h.ServerTiming != nil {
		if err := h.ServerTiming.validate(h.Namespace); err != nil {
			return err
		}
	}
	if _, err := parseLatencyMode(h.Latency); err != nil {
		return err
	}
	return nil
}

// latencyMode is a provisioned Latency.
type latencyMode uint8

const (
	latencyAuto      latencyMode = iota // complete; first byte for text/event-stream
	latencyComplete                     // until the handler chain returns
	latencyFirstByte                    // until the final header was written
)

const (
	latencyCompleteName  = "complete"
	latencyFirstByteName = "first_byte"
)

func parseLatencyMode(s string) (latencyMode, error) {
	switch s {
	case "":
		return latencyAuto, nil
	case latencyCompleteName:
		return latencyComplete, nil
	case latencyFirstByteName:
		return latencyFirstByte, nil
	}
	return latencyAuto, fmt.Errorf("latency %q must be %s (until the response was written) or %s (until its header was)",
		s, latencyCompleteName, latencyFirstByteName)
}

// Provision resolves every handle this handler will use, so serving a
// request involves no lookup, lock or allocation in libmetrics.
func (h *RouteMetrics) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	// Caddy calls Validate after Provision; the C library must not be the
	// first to see a bad value.
	if err := h.Validate(); err != nil {
		return err
	}
	reg, err := appRegistry(ctx)
	if err != nil {
		return err
	}
	hf, warnings, err := acquireHTTP(reg, h.Namespace, h.histSettings(), h.shape())
	h.warn(warnings)
	if err != nil {
		return err
	}
	h.http, h.acquired = hf, true
	h.latency, _ = parseLatencyMode(h.Latency) // validated above
	h.reqIDKey = http.CanonicalHeaderKey(h.RequestID)
	h.inherited = new(atomic.Pointer[inheritedRoute])
	if h.route, err = hf.route(h.routeName()); err != nil {
		return err
	}
	if err := h.provisionTemplates(hf); err != nil {
		return err
	}
	h.rules = make([]counterRule, 0, len(h.Counters))
	for i := range h.Counters {
		rule, err := h.Counters[i].provision(reg)
		if err != nil {
			return err
		}
		h.rules = append(h.rules, rule)
	}
	if h.ServerTiming != nil {
		h.st, warnings, err = h.ServerTiming.provision(reg, h.NativeHistograms.spec())
		h.warn(warnings)
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *RouteMetrics) histSettings() histSettings {
	return histSettings{bounds: h.Buckets, native: h.NativeHistograms}
}

// warn logs why a histogram shows less native resolution than configured.
func (h *RouteMetrics) warn(warnings []string) {
	for _, w := range warnings {
		h.logger.Warn("route_metrics: native_histograms: " + w)
	}
}

// Cleanup drops this handler's bucket wish; metrics themselves stay.
func (h *RouteMetrics) Cleanup() error {
	if !h.acquired {
		return nil
	}
	h.acquired = false
	warnings, err := releaseHTTP(h.Namespace, h.histSettings())
	h.warn(warnings)
	return err
}

// inheritedRoute is a handler's route in a namespace it inherits.
type inheritedRoute struct {
	hf *httpFamilies
	rt *route
}

// routeIn finds this handler's route in the namespace the request is
// being recorded in.
func (h *RouteMetrics) routeIn(hf *httpFamilies) *route {
	if hf == h.http || h.Namespace != "" {
		return h.route
	}
	if in := h.inherited.Load(); in != nil && in.hf == hf {
		return in.rt
	}
	rt, err := hf.route(h.routeName())
	if err != nil {
		// Only a full route table gets here; keep counting under the
		// enclosing route rather than dropping the request.
		h.logger.Error("route_metrics: cannot resolve route", zap.String("route", h.routeName()), zap.Error(err))
		return nil
	}
	h.inherited.Store(&inheritedRoute{hf: hf, rt: rt})
	return rt
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *RouteMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// An enclosing route_metrics' tracker: through the response writer
	// when it is that handler's own (nothing in between wrapped it), else
	// in the vars table (the exact way, taken also by the outermost one).
	if rec, ok := w.(*recorder); ok && rec.t != nil {
		return h.serveNested(rec.t, w, r, next)
	}
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if t := trackerIn(vars, r); t != nil {
		return h.serveNested(t, w, r, next)
	}
	return h.serveOutermost(w, r, vars, next)
}

func (h *RouteMetrics) serveNested(t *tracker, w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !t.done {
		hf := t.http
		if h.Namespace != "" {
			hf = h.http // its own namespace; without one it inherits
		}
		rt := h.routeIn(hf)
		if h.tpl != nil {
			rt = t.matchTemplates(h, hf, rt, r.URL)
		} else {
			t.tplH = nil // the innermost route_metrics decides
		}
		if rt != nil {
			t.retarget(hf, rt)
		}
		t.addHandler(h)
		if h.reqIDKey != "" && t.reqIDHeader == "" {
			t.setRequestID(h.reqIDKey, w, r)
		}
	}
	return next.ServeHTTP(w, r)
}

func (h *RouteMetrics) serveOutermost(w http.ResponseWriter, r *http.Request, vars map[string]any, next caddyhttp.Handler) error {
	t, r := startTracker(h.http, w, r, vars)
	if h.tpl != nil {
		t.enter(t.matchTemplates(h, t.http, h.route, r.URL))
	} else {
		t.enter(h.route)
	}
	t.addHandler(h)
	if h.reqIDKey != "" {
		t.setRequestID(h.reqIDKey, w, r)
	}

	finished := false
	defer func() {
		// Reached without finishing only while a panic unwinds (or on
		// runtime.Goexit); the panic continues. Record what the client
		// saw: the status already sent if the final header went out
		// (the client got that status and a cut body: aborted.go), else a
		// 500. The tracker is not reused: the unwinding may still reach it.
		if !finished {
			status := http.StatusInternalServerError
			if t.rec.wroteHeader {
				status = t.rec.status
			}
			t.end(status)
			if t.rec.wroteHeader {
				t.countAborted(status)
			}
		}
	}()
	err := next.ServeHTTP(&t.rec, r)
	finished = true

	status := t.rec.status
	switch {
	case t.rec.wroteHeader:
	case err != nil:
		status = statusFromError(err)
	default:
		// Nothing written: net/http sends an empty 200.
		status = http.StatusOK
	}
	t.end(status)
	if err != nil && t.rec.wroteHeader {
		// The status went out, then the chain failed: a cut response.
		t.countAborted(status)
	}
	t.release()
	return err
}

// String describes the handler in logs.
func (h *RouteMetrics) String() string {
	return fmt.Sprintf("route_metrics(%s)", h.routeName())
}

// Interface guards
var (
	_ caddy.Provisioner           = (*RouteMetrics)(nil)
	_ caddy.Validator             = (*RouteMetrics)(nil)
	_ caddy.CleanerUpper          = (*RouteMetrics)(nil)
	_ caddyhttp.MiddlewareHandler = (*RouteMetrics)(nil)
)
