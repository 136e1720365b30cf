package routemetrics

// Per-request recording cost, our path against prometheus/client_golang,
// in one benchmark so that `benchstat -col /impl` compares them side by
// side (bench/run.sh runs it with -count and writes bench/RESULTS.md):
//
//	impl=lm     what route_metrics does per request around the wrapped
//	            handler: in-flight cell atomic +1/-1, method mapping, one
//	            lm_route_record crossing (tracker.enter and tracker.finish,
//	            the handler's own code).
//	impl=prom   the same labelled work with client_golang the way Caddy's
//	            built-in instrumentation does it: GaugeVec/CounterVec/
//	            HistogramVec with per-request WithLabelValues lookups,
//	            in-flight Inc/Dec, counter Inc, histogram Observe, bytes Add.
//	impl=caddy  Caddy v2.11's metricsInstrumentedRoute metric calls as
//	            written (prometheus.Labels maps, With(), six families), for
//	            reference.
//	impl=clock  the two clock reads (time.Now, time.Since) any instrumented
//	            handler adds; identical for every implementation, so they
//	            are measured once here instead of inside each, and the
//	            report adds them back for the "with clock" ratio.
//
// The durations recorded are precomputed. Response-writer wrapping, the
// tracker's allocation, Caddy's response recorder and request-size walk
// are not metric work and are left out; the wrk runs measure the whole
// server.

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchReq is one request's label-relevant facts. A few hot tuples on two
// routes, as a real site has, so lookups do not all hit one series.
type benchReq struct {
	method string
	status int
	bytes  uint64
	route  int
	d      time.Duration
}

var benchReqs = [8]benchReq{
	{"GET", 200, 512, 0, 1200 * time.Microsecond},
	{"GET", 200, 2048, 1, 300 * time.Microsecond},
	{"POST", 201, 64, 0, 23 * time.Millisecond},
	{"GET", 304, 0, 1, 150 * time.Microsecond},
	{"GET", 404, 19, 0, 90 * time.Microsecond},
	{"GET", 200, 512, 0, 4 * time.Millisecond},
	{"HEAD", 200, 0, 1, 80 * time.Microsecond},
	{"GET", 500, 21, 0, 310 * time.Millisecond},
}

var benchRouteNames = [2]string{"api", "static"}

// lmRecordFixture uses a private registry so the benchmark neither depends
// on nor disturbs the process-wide one.
type lmRecordFixture struct {
	reg    *lmRegistry
	http   *httpFamilies
	routes [2]*route
}

var lmRecord = sync.OnceValues(func() (*lmRecordFixture, error) {
	reg, err := newLMRegistry()
	if err != nil {
		return nil, err
	}
	hf, err := reg.registerHTTP("", nil, httpShape{}, defaultNative())
	if err != nil {
		return nil, err
	}
	f := &lmRecordFixture{reg: reg, http: hf}
	for i, n := range benchRouteNames {
		if f.routes[i], err = hf.route(n); err != nil {
			return nil, err
		}
	}
	return f, nil
})

func (f *lmRecordFixture) serve(q *benchReq) {
	t := tracker{http: f.http}
	t.enter(f.routes[q.route])
	t.rec.bytes = q.bytes
	t.finish(q.method, q.status, q.d)
}

// promRecordFixture holds the same five families as lm_http, with the
// same latency buckets, in a fresh client_golang registry.
type promRecordFixture struct {
	inflight *prometheus.GaugeVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	reqBytes *prometheus.CounterVec
}

func newPromHTTPFamilies(reg *prometheus.Registry, prefix string) *promRecordFixture {
	labels := []string{"method", "endpoint", "status"}
	f := &promRecordFixture{
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prefix + "http_requests_in_progress", Help: "Requests in progress.",
		}, []string{"endpoint"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "http_requests_total", Help: "Requests completed.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: prefix + "http_request_duration_seconds", Help: "Request latency.",
			Buckets: defaultLatencyBounds(),
		}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "http_response_size_bytes_total", Help: "Response body bytes.",
		}, labels),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "http_request_size_bytes_total", Help: "Request body bytes.",
		}, labels),
	}
	reg.MustRegister(f.inflight, f.requests, f.duration, f.bytes, f.reqBytes)
	return f
}

var promRecord = sync.OnceValue(func() *promRecordFixture {
	return newPromHTTPFamilies(prometheus.NewRegistry(), "")
})

// Copies of Caddy's internal/metrics helpers (not importable), so the
// client_golang paths pay for label strings exactly as Caddy does.
func caddySanitizeCode(s int) string {
	switch s {
	case 0, 200:
		return "200"
	default:
		return strconv.Itoa(s)
	}
}

var caddyMethodMap = map[string]string{
	"GET": "GET", "get": "GET", "HEAD": "HEAD", "head": "HEAD",
	"PUT": "PUT", "put": "PUT", "POST": "POST", "post": "POST",
	"DELETE": "DELETE", "delete": "DELETE", "CONNECT": "CONNECT", "connect": "CONNECT",
	"OPTIONS": "OPTIONS", "options": "OPTIONS", "TRACE": "TRACE", "trace": "TRACE",
	"PATCH": "PATCH", "patch": "PATCH",
}

func caddySanitizeMethod(m string) string {
	if v, ok := caddyMethodMap[m]; ok {
		return v
	}
	return "OTHER"
}

func (f *promRecordFixture) serve(q *benchReq) {
	route := benchRouteNames[q.route]
	g := f.inflight.WithLabelValues(route)
	g.Inc()
	g.Dec()
	m, code := caddySanitizeMethod(q.method), caddySanitizeCode(q.status)
	f.requests.WithLabelValues(m, route, code).Inc()
	f.duration.WithLabelValues(m, route, code).Observe(q.d.Seconds())
	f.bytes.WithLabelValues(m, route, code).Add(float64(q.bytes))
	f.reqBytes.WithLabelValues(m, route, code).Add(0) // the plans read no request body
}

// caddyRecordFixture holds the families of Caddy's initHTTPMetrics.
type caddyRecordFixture struct {
	inFlight                                  *prometheus.GaugeVec
	count                                     *prometheus.CounterVec
	duration, reqSize, respSize, respDuration *prometheus.HistogramVec
}

var caddyRecord = sync.OnceValue(func() *caddyRecordFixture {
	const ns, sub = "caddy", "http"
	basic := []string{"server", "handler"}
	httpLabels := []string{"server", "handler", "code", "method"}
	sizeBuckets := prometheus.ExponentialBuckets(256, 4, 8)
	f := &caddyRecordFixture{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_in_flight", Help: "In flight."}, basic),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Requests."}, basic),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_duration_seconds", Help: "Duration.", Buckets: prometheus.DefBuckets}, httpLabels),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_size_bytes", Help: "Request size.", Buckets: sizeBuckets}, httpLabels),
		respSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "response_size_bytes", Help: "Response size.", Buckets: sizeBuckets}, httpLabels),
		respDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "response_duration_seconds", Help: "TTFB.", Buckets: prometheus.DefBuckets}, httpLabels),
	}
	prometheus.NewRegistry().MustRegister(f.inFlight, f.count, f.duration, f.reqSize, f.respSize, f.respDuration)
	return f
})

func (f *caddyRecordFixture) serve(q *benchReq) {
	const server = "srv0"
	handler := benchRouteNames[q.route]
	labels := prometheus.Labels{"server": server, "handler": handler}
	method := caddySanitizeMethod(q.method)
	statusLabels := prometheus.Labels{"server": server, "handler": handler, "method": method, "code": ""}
	inFlight := f.inFlight.With(labels)
	inFlight.Inc()
	statusLabels["code"] = caddySanitizeCode(q.status)
	f.respDuration.With(statusLabels).Observe(q.d.Seconds() / 2) // time to first byte
	dur := q.d.Seconds()
	f.count.With(labels).Inc()
	f.duration.With(statusLabels).Observe(dur)
	f.reqSize.With(statusLabels).Observe(78) // computeApproximateRequestSize of a small GET
	f.respSize.With(statusLabels).Observe(float64(q.bytes))
	inFlight.Dec()
}

// benchSink keeps the parallel loops' work observable.
var benchSink atomic.Uint64

// clockServe is what an instrumented handler spends on timing a request.
// The branch is never taken; it only keeps the reads from being elided.
func clockServe(*benchReq) {
	start := time.Now()
	if time.Since(start) < 0 {
		benchSink.Add(1)
	}
}

// processCPU is the CPU time (user + system) the process has used. The
// machine the benchmarks run on is shared, so besides wall time per op
// they report CPU time per op ("cpu-ns/op"), which leaves out time spent
// descheduled and includes work on other threads (GC) that wall time hides.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op for the b.N ops done since c0.
func reportCPU(b *testing.B, c0 time.Duration) {
	b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkRecord(b *testing.B) {
	lm, err := lmRecord()
	if err != nil {
		b.Fatal(err)
	}
	impls := []struct {
		name  string
		serve func(*benchReq)
	}{
		{"lm", lm.serve},
		{"prom", promRecord().serve},
		{"caddy", caddyRecord().serve},
		{"clock", clockServe},
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, impl := range impls {
			b.Run("mode="+mode+"/impl="+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				c0 := processCPU()
				defer reportCPU(b, c0)
				if mode == "serial" {
					for i := 0; b.Loop(); i++ {
						impl.serve(&benchReqs[i&7])
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						impl.serve(&benchReqs[i&7])
						i++
					}
					benchSink.Add(uint64(i))
				})
			})
		}
	}
	// The lm path must really have counted (a benchmark of a no-op would
	// look wonderful) and left the in-flight gauges at zero.
	body, err := lmScrape(lm.reg, formatText)
	if err != nil {
		b.Fatal(err)
	}
	for _, want := range []string{
		`http_requests_total{method="GET",endpoint="api",status="200"} `,
		`http_requests_in_progress{endpoint="api"} 0` + "\n",
	} {
		if !strings.Contains(string(body), want) {
			b.Fatalf("exposition lacks %q", want)
		}
	}
}
