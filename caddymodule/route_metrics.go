package routemetrics

import (
	"fmt"
	"net/http"
	"time"

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

	http     *httpFamilies
	route    *route
	rules    []counterRule
	st       *stConfig
	acquired bool
	logger   *zap.Logger
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
	return nil
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
	reg, err := sharedRegistry()
	if err != nil {
		return err
	}
	hf, warnings, err := acquireHTTP(h.Namespace, h.histSettings())
	h.warn(warnings)
	if err != nil {
		return err
	}
	h.http, h.acquired = hf, true
	if h.route, err = hf.route(h.routeName()); err != nil {
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

// routeIn finds this handler's route in the namespace the request is
// being recorded in.
func (h *RouteMetrics) routeIn(hf *httpFamilies) *route {
	if hf == h.http || h.Namespace != "" {
		return h.route
	}
	rt, err := hf.route(h.routeName())
	if err != nil {
		// Only a full route table gets here; keep counting under the
		// enclosing route rather than dropping the request.
		h.logger.Error("route_metrics: cannot resolve route", zap.String("route", h.routeName()), zap.Error(err))
		return nil
	}
	return rt
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *RouteMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if t := trackerOf(r); t != nil {
		if !t.done {
			if rt := h.routeIn(t.http); rt != nil {
				t.retarget(rt)
			}
			t.addHandler(h)
			if h.RequestID != "" && t.reqIDHeader == "" {
				t.setRequestID(h.RequestID, w, r)
			}
		}
		return next.ServeHTTP(w, r)
	}
	return h.serveOutermost(w, r, next)
}

func (h *RouteMetrics) serveOutermost(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	t := &tracker{http: h.http, start: start}
	t.rec.ResponseWriter = w
	t.rec.t = t
	t.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	t.enter(h.route)
	t.addHandler(h)
	r = t.attach(r)
	method := r.Method
	if h.RequestID != "" {
		t.setRequestID(h.RequestID, w, r)
	}

	finished := false
	defer func() {
		// Reached without finishing only while a panic unwinds (or on
		// runtime.Goexit): count a 500 and let the panic continue.
		if !finished {
			t.finish(method, http.StatusInternalServerError, time.Since(start))
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
	t.finish(method, status, time.Since(start))
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
