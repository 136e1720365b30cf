package routemetrics

// What route_metrics adds to a whole request inside a real Caddy server:
// each configuration below is a Caddyfile, adapted by Caddy's own adapter
// and loaded with caddy.Load (admin off, automatic HTTPS off, one listener
// on an ephemeral loopback port that no request uses), and the benchmark
// calls the loaded caddyhttp.Server's ServeHTTP, the method net/http calls
// for every request: Caddy's whole path (replacer, vars table, request
// preparation, route matching, handle's subroute, built-in metrics when
// enabled) with route_metrics as the Caddyfile places it. The request is a
// GET of /api/users/42/orders with no body; the response writer discards
// what is written. Only the network and net/http's own connection handling
// are left out, and they are the same with or without route_metrics.
//
// Configurations (config=NAME), each with the bare configuration it is
// compared with (the same routes and final handler, no route_metrics):
//
//	bare                  handle /api/* { respond "ok" }
//	builtin               bare + Caddy's built-in metrics (global `metrics`)
//	single                one `route_metrics api` inside the handle block
//	nested                site-level `route_metrics` + `route_metrics api`
//	                      inside the handle block (Caddyfile.example's shape)
//	nested+request_id     nested, the site-level one with `request_id` (no
//	                      ID from the client: Caddy's {http.request.uuid})
//	bare+upstream         the final handler is lm_bench_upstream (below):
//	                      it leaves in the replacer what reverse_proxy
//	                      leaves after a round trip, then answers "ok"
//	nested+upstream       nested over it: + http_upstream_duration_seconds
//	bare+st               lm_bench_upstream also sends a two-entry
//	                      Server-Timing header
//	nested+server_timing  nested, site level with a server_timing block
//	                      (Caddyfile.example's) over it
//	nested+templates      nested, `route_metrics api` with an OpenAPI spec
//	                      of maxTemplates templates (one matches the path)
//	nested+all            every extra of Caddyfile.example at once, over
//	                      bare+st: request_id, server_timing (strip),
//	                      upstream latency, templates
//
// Caddy compiles a route's handler chain on every request (one closure per
// handler, more per matched route), so any handler costs allocations of
// Caddy's own wherever it is placed. The noop:X configurations are X with
// every route_metrics replaced by lm_bench_noop (below), a handler that
// only calls the next one, in the same JSON structure: X minus noop:X is
// what route_metrics itself costs, noop:X minus X's bare configuration
// what Caddy's routing charges for any handler in those places.
//
// A real reverse_proxy is left out on purpose: a round trip to an upstream
// costs tens of microseconds of syscalls and scheduling, whose noise would
// hide the differences measured here; what route_metrics does with a
// proxied request is read what reverse_proxy left in the replacer, and
// lm_bench_upstream leaves exactly that.
//
// Reported per request: ns/op (wall), cpu-ns/op (the process's user +
// system CPU time, GC included) and allocs/op. bench/run.sh (part chain)
// runs it pinned to one CPU with -test.cpu 1 in interleaved rounds and
// reports each configuration's cost over its bare configuration.
// Run: go test -run '^$' -bench '^BenchmarkChain$' -benchmem -cpu 1

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(benchNoop{})
	caddy.RegisterModule(benchUpstream{})
	httpcaddyfile.RegisterHandlerDirective("lm_bench_upstream", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		var u benchUpstream
		return &u, u.UnmarshalCaddyfile(h.Dispenser)
	})
}

// benchNoop (http.handlers.lm_bench_noop, test binary only) calls the next
// handler and does nothing else.
type benchNoop struct{}

func (benchNoop) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.lm_bench_noop", New: func() caddy.Module { return new(benchNoop) }}
}

func (benchNoop) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

// benchUpstream (http.handlers.lm_bench_upstream, test binary only) stands
// in for reverse_proxy after a successful round trip: it sets the
// values reverse_proxy leaves for the upstream (its vars entry; address,
// hostport, latency in the replacer) and answers 200 "ok", with a Server-Timing header if
// configured, as the upstream's response would carry it.
type benchUpstream struct {
	ServerTiming string `json:"server_timing,omitempty"`
	timing       []string
}

func (benchUpstream) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.lm_bench_upstream", New: func() caddy.Module { return new(benchUpstream) }}
}

func (u *benchUpstream) Provision(caddy.Context) error {
	if u.ServerTiming != "" {
		u.timing = []string{u.ServerTiming}
	}
	return nil
}

// UnmarshalCaddyfile: lm_bench_upstream [<server-timing header value>]
func (u *benchUpstream) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		u.ServerTiming = d.Val()
	}
	return nil
}

var benchOK = []byte("ok")

func (u *benchUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.reverse_proxy.upstream.address", "127.0.0.1:8081")
	d := 2500 * time.Microsecond
	leaveUpstream(r, repl, "127.0.0.1:8081", d)
	repl.Set("http.reverse_proxy.upstream.latency_ms", d.Seconds()*1e3)
	if u.timing != nil {
		w.Header()[serverTimingHeader] = u.timing
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(benchOK)
	return err
}

// chainConfig is one benchmarked configuration: Caddyfile fragments
// around the routes every configuration shares.
type chainConfig struct {
	name    string
	bare    string // the configuration it is compared with ("" for bare ones)
	noop    string // its noop: twin (route_metrics configurations only)
	from    string // noop: twins: the configuration whose route_metrics become lm_bench_noop
	global  string // global options beyond the common ones
	site    string // site-level directives
	api     string // directives inside handle /api/*
	backend string // the final handler
	ns      string // route_metrics namespace (chainNS), for the count check
}

const (
	// Every configuration records into one namespace, the only
	// route_metrics activity while a configuration runs, so its counts
	// are its own. The test binary's registry holds at most 16 HTTP
	// namespaces (libmetrics) and the tests use them all: this one is
	// shared with extras_test.go.
	chainNS           = "t_ex_"
	chainPath         = "/api/users/42/orders"
	chainTemplate     = "/api/users/{user_id}/orders"
	chainBackend      = `respond "ok"`
	chainUpstream     = `lm_bench_upstream`
	chainUpstreamST   = "lm_bench_upstream `" + `db;desc="select";dur=3.2, db;desc="insert";dur=7.5` + "`"
	chainServerTiming = `server_timing {
			strip
			metric db {
				queries bch_db_queries_total
				duration bch_db_query_duration_seconds
				operations select insert update delete
				buckets 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1
			}
		}`
)

// chainTemplates is the api handler's template configuration. It names
// the namespace too: a handler resolves its template routes in its own
// namespace when the configuration loads, and the default one is shared
// with the rest of the test binary.
const chainTemplates = "namespace " + chainNS + "\n\t\t\topenapi {spec}"

// chainConfigs lists the configurations in the order they run; {spec} is
// replaced by the OpenAPI file's path.
func chainConfigs() []chainConfig {
	nested := func(name, siteExtra, apiExtra, backend, bare, noop string) chainConfig {
		return chainConfig{name: name, bare: bare, noop: noop, backend: backend, ns: chainNS,
			site: "route_metrics {\n\t\tnamespace " + chainNS + "\n\t\t" + siteExtra + "\n\t}",
			api:  "route_metrics api {\n\t\t\t" + apiExtra + "\n\t\t}"}
	}
	return []chainConfig{
		{name: "bare", backend: chainBackend},
		{name: "builtin", bare: "bare", global: "metrics", backend: chainBackend},
		{name: "single", bare: "bare", noop: "noop:single", backend: chainBackend, ns: chainNS,
			api: "route_metrics api {\n\t\t\tnamespace " + chainNS + "\n\t\t}"},
		{name: "noop:single", from: "single"},
		nested("nested", "", "", chainBackend, "bare", "noop:nested"),
		{name: "noop:nested", from: "nested"},
		nested("nested+request_id", "request_id", "", chainBackend, "bare", "noop:nested"),
		nested("nested+templates", "", chainTemplates, chainBackend, "bare", "noop:nested"),
		{name: "bare+upstream", global: "order lm_bench_upstream last", backend: chainUpstream},
		withGlobal(nested("nested+upstream", "", "", chainUpstream, "bare+upstream", "noop:nested+upstream")),
		{name: "noop:nested+upstream", from: "nested+upstream"},
		{name: "bare+st", global: "order lm_bench_upstream last", backend: chainUpstreamST},
		withGlobal(nested("nested+server_timing", chainServerTiming, "", chainUpstreamST, "bare+st", "noop:nested+st")),
		{name: "noop:nested+st", from: "nested+server_timing"},
		withGlobal(nested("nested+all", "request_id\n\t\t"+chainServerTiming, chainTemplates, chainUpstreamST, "bare+st", "noop:nested+st")),
	}
}

func withGlobal(c chainConfig) chainConfig {
	c.global = "order lm_bench_upstream last"
	return c
}

// caddyfile renders c; every configuration has the same three routes.
func (c chainConfig) caddyfile(spec string) string {
	text := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	log default {
		output discard
	}
	%s
}

http://127.0.0.1:0 {
	%s
	handle /metrics {
		respond "no metrics" 404
	}
	handle /api/* {
		%s
		%s
	}
	handle {
		%s
	}
}
`, c.global, c.site, c.api, c.backend, c.backend)
	return strings.ReplaceAll(text, "{spec}", spec)
}

// writeChainSpec writes an OpenAPI document of maxTemplates paths shaped
// like a FastAPI app's (literal segments and {parameters}), one of them
// chainTemplate.
func writeChainSpec(tb testing.TB) string {
	tb.Helper()
	paths := map[string]any{chainTemplate: map[string]any{}}
	for i := 0; len(paths) < maxTemplates; i++ {
		for _, p := range []string{"/api/r%d", "/api/r%d/{item_id}", "/api/r%d/{item_id}/parts/{part_id:int}"} {
			if len(paths) < maxTemplates {
				paths[fmt.Sprintf(p, i)] = map[string]any{}
			}
		}
	}
	doc, err := json.Marshal(map[string]any{"openapi": "3.1.0", "paths": paths})
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(tb.TempDir(), "openapi.json")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		tb.Fatal(err)
	}
	return file
}

// chainJSON is c's configuration as Caddy loads it.
func chainJSON(tb testing.TB, c chainConfig, spec string) []byte {
	tb.Helper()
	if c.from != "" {
		from, ok := chainConfigNamed(c.from)
		if !ok {
			tb.Fatalf("%s: no configuration %q", c.name, c.from)
		}
		var cfg any
		if err := json.Unmarshal(chainJSON(tb, from, spec), &cfg); err != nil {
			tb.Fatal(err)
		}
		if n := replaceRouteMetrics(cfg); n == 0 {
			tb.Fatalf("%s: no route_metrics in %s", c.name, c.from)
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	out, err := adapt(c.caddyfile(spec))
	if err != nil {
		tb.Fatalf("%s: adapting: %v\n%s", c.name, err, c.caddyfile(spec))
	}
	return out
}

func chainConfigNamed(name string) (chainConfig, bool) {
	for _, c := range chainConfigs() {
		if c.name == name {
			return c, true
		}
	}
	return chainConfig{}, false
}

// replaceRouteMetrics replaces every route_metrics handler in a decoded
// JSON configuration with lm_bench_noop, in place; it returns how many.
func replaceRouteMetrics(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if m, ok := e.(map[string]any); ok && m["handler"] == "route_metrics" {
				v[k] = map[string]any{"handler": "lm_bench_noop"}
				n++
				continue
			}
			n += replaceRouteMetrics(e)
		}
	case []any:
		for i, e := range v {
			if m, ok := e.(map[string]any); ok && m["handler"] == "route_metrics" {
				v[i] = map[string]any{"handler": "lm_bench_noop"}
				n++
				continue
			}
			n += replaceRouteMetrics(e)
		}
	}
	return n
}

// loadChains loads the configurations cs side by side, one server each
// (listening on 127.0.0.<i+1>, an ephemeral port), and returns their
// servers in the order given; the configuration is stopped with tb. Only
// their servers are merged: every other setting is the first one's, so
// builtin (an app-wide setting) loads alone.
func loadChains(tb testing.TB, spec string, cs ...chainConfig) []*caddyhttp.Server {
	tb.Helper()
	var base map[string]any
	servers := map[string]any{}
	for i, c := range cs {
		var cfg map[string]any
		if err := json.Unmarshal(chainJSON(tb, c, spec), &cfg); err != nil {
			tb.Fatal(err)
		}
		httpApp := cfg["apps"].(map[string]any)["http"].(map[string]any)
		if _, ok := httpApp["metrics"]; ok && len(cs) > 1 {
			tb.Fatalf("%s: Caddy's built-in metrics are app-wide; load it alone", c.name)
		}
		srv := httpApp["servers"].(map[string]any)["srv0"].(map[string]any)
		srv["listen"] = []any{fmt.Sprintf("127.0.0.%d:0", i+1)}
		servers[fmt.Sprintf("lm%d", i)] = srv
		if base == nil {
			base = cfg
		}
	}
	base["apps"].(map[string]any)["http"].(map[string]any)["servers"] = servers
	cfgJSON, err := json.Marshal(base)
	if err != nil {
		tb.Fatal(err)
	}
	loaded := loadServers(tb, cfgJSON)
	out := make([]*caddyhttp.Server, len(cs))
	for i := range cs {
		out[i] = loaded[fmt.Sprintf("lm%d", i)]
	}
	return out
}

// chainWriter is the response writer: it keeps the status and body of the
// last response and nothing else, and accepts deadlines.
type chainWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *chainWriter) Header() http.Header { return w.h }
func (w *chainWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *chainWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// SetWriteDeadline and SetReadDeadline succeed, as net/http's writer's do
// (Caddy sets deadlines through http.ResponseController on every write).
func (w *chainWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *chainWriter) SetReadDeadline(time.Time) error  { return nil }

func (w *chainWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body = w.body[:0]
}

// chainRequests serves n requests through srv, resetting what a new
// request would not carry: the response headers, and the X-Request-ID
// that request_id put in the (shared) request header map, so every
// request arrives without one.
func chainRequests(srv *caddyhttp.Server, r *http.Request, w *chainWriter, loop func() bool) int {
	n := 0
	for loop() {
		w.reset()
		delete(r.Header, "X-Request-Id")
		srv.ServeHTTP(w, r)
		n++
	}
	return n
}

func newChainRequest() *http.Request {
	return httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+chainPath, nil)
}

func BenchmarkChain(b *testing.B) {
	spec := writeChainSpec(b)
	for _, c := range chainConfigs() {
		b.Run("config="+c.name, func(b *testing.B) {
			srv := loadChains(b, spec, c)[0]
			r, w := newChainRequest(), &chainWriter{h: http.Header{}}
			before := chainCount(b, c)
			b.ReportAllocs()
			c0 := processCPU()
			n := chainRequests(srv, r, w, b.Loop)
			reportCPU(b, c0)
			checkChain(b, c, w, before, n)
		})
	}
}

// BenchmarkChainOverhead measures what BenchmarkChain cannot resolve on a
// busy machine: the CPU time route_metrics adds to a request of some
// 10 us, whose own spread between runs is larger than that. Each
// route_metrics configuration X is loaded beside its noop twin and its
// bare configuration (three servers in one Caddy), and the loop serves
// chainBatch requests to each of the three in turn, in an order rotated
// every round, timing each batch's process CPU time. The collector is off
// during batches and runs between rounds (BenchmarkChain's B/op and
// allocs/op are what it collects); differences are taken within a round,
// so a change in the machine's speed hits all three alike. Reported, per
// request:
//
//	cpu-ns/op      X's CPU time (median over batches)
//	own-ns/op      X minus noop:X: route_metrics' own cost (median of the
//	               per-round differences)
//	total-ns/op    X minus bare: what a user pays for adding it
//
// ns/op is X's wall time per request.
func BenchmarkChainOverhead(b *testing.B) {
	spec := writeChainSpec(b)
	for _, c := range chainConfigs() {
		if c.noop == "" {
			continue
		}
		noop, _ := chainConfigNamed(c.noop)
		bare, _ := chainConfigNamed(c.bare)
		b.Run("config="+c.name, func(b *testing.B) {
			srvs := loadChains(b, spec, c, noop, bare)
			r, w := newChainRequest(), &chainWriter{h: http.Header{}}
			before := chainCount(b, c)
			old := debug.SetGCPercent(-1)
			defer debug.SetGCPercent(old)
			runtime.GC()
			var cpu [3][]float64 // per round, ns per request
			var wall time.Duration
			n := 0
			for round := 0; b.Loop(); round++ {
				for k := range 3 {
					i := (k + round) % 3
					c0, t0 := processCPUClock(), time.Now()
					for range chainBatch {
						w.reset()
						delete(r.Header, "X-Request-Id")
						srvs[i].ServeHTTP(w, r)
					}
					d := processCPUClock() - c0
					if i == 0 {
						wall += time.Since(t0)
						n += chainBatch
					}
					cpu[i] = append(cpu[i], float64(d)/chainBatch)
				}
				if round%chainGCRounds == chainGCRounds-1 {
					b.StopTimer()
					runtime.GC()
					b.StartTimer()
				}
			}
			own := make([]float64, len(cpu[0]))
			total := make([]float64, len(cpu[0]))
			for j := range cpu[0] {
				own[j] = cpu[0][j] - cpu[1][j]
				total[j] = cpu[0][j] - cpu[2][j]
			}
			b.ReportMetric(float64(wall)/float64(n), "ns/op")
			b.ReportMetric(median(cpu[0]), "cpu-ns/op")
			b.ReportMetric(median(own), "own-ns/op")
			b.ReportMetric(median(total), "total-ns/op")
			// The last request served was not necessarily X's.
			w.reset()
			delete(r.Header, "X-Request-Id")
			srvs[0].ServeHTTP(w, r)
			checkChain(b, c, w, before, n+1)
		})
	}
}

const (
	// Requests per batch: a few hundred microseconds, long against the
	// clock reads around it, short against changes in the machine's load.
	chainBatch = 64
	// Rounds between collections: about 40 MB of garbage.
	chainGCRounds = 32
)

// processCPUClock is the process's CPU time from
// clock_gettime(CLOCK_PROCESS_CPUTIME_ID), which includes the running
// thread's time up to now; getrusage (processCPU) only advances at
// scheduler ticks, too coarse for a batch of a few hundred microseconds.
func processCPUClock() time.Duration {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		panic(e)
	}
	return time.Duration(ts.Nano())
}

// CLOCK_PROCESS_CPUTIME_ID (linux/time.h); the syscall package has no name
// for it.
const clockProcessCPUTimeID = 2

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// chainCount is the requests route_metrics counted so far under c's
// namespace (all of them under endpoint "api" or the template).
func chainCount(tb testing.TB, c chainConfig) float64 {
	if c.ns == "" {
		return 0
	}
	e, _ := scrapeShared(tb, formatText)
	var n float64
	for k, v := range e {
		if strings.HasPrefix(k, c.ns+"http_requests_total{") {
			n += v
		}
	}
	return n
}

// checkChain fails unless the last response was the backend's 200 "ok"
// and route_metrics counted every request, under the endpoint it should.
func checkChain(tb testing.TB, c chainConfig, w *chainWriter, before float64, n int) {
	tb.Helper()
	if w.status != http.StatusOK || string(w.body) != "ok" {
		tb.Fatalf("%s: last response %d %q, want 200 \"ok\"", c.name, w.status, w.body)
	}
	if c.ns == "" {
		return
	}
	if got := chainCount(tb, c) - before; got != float64(n) {
		tb.Fatalf("%s: %v requests counted, want %d", c.name, got, n)
	}
	endpoint := "api"
	if strings.Contains(c.api, "openapi") {
		endpoint = chainTemplate
	}
	e, _ := scrapeShared(tb, formatText)
	if e[reqKey(c.ns, "GET", endpoint, 200)] == 0 {
		tb.Fatalf("%s: nothing counted under endpoint %q", c.name, endpoint)
	}
	if e[inflightKey(c.ns, "api")] != 0 || e[inflightKey(c.ns, "other")] != 0 {
		tb.Fatalf("%s: requests left in flight", c.name)
	}
	if strings.Contains(c.site, "server_timing") {
		if len(w.h[serverTimingHeader]) != 0 {
			tb.Fatalf("%s: Server-Timing not stripped", c.name)
		}
		q := key("bch_db_queries_total", "endpoint", endpoint, "operation", "select")
		if e[q] == 0 {
			tb.Fatalf("%s: no Server-Timing entries recorded (%s)", c.name, q)
		}
	}
	if strings.Contains(c.site, "request_id") && len(w.h["X-Request-Id"]) != 1 {
		tb.Fatalf("%s: response carries %d X-Request-ID", c.name, len(w.h["X-Request-Id"]))
	}
	if strings.Contains(c.backend, "upstream") {
		up := key(c.ns+"http_upstream_duration_seconds_count", "endpoint", endpoint, "upstream", "127.0.0.1:8081")
		if e[up] < float64(n) {
			tb.Fatalf("%s: upstream latency observed %v times, want >= %d", c.name, e[up], n)
		}
	}
}

// TestChainConfigs loads every BenchmarkChain configuration and serves a
// few requests through it, so the benchmark's configurations keep
// adapting, loading and counting as it claims.
func TestChainConfigs(t *testing.T) {
	spec := writeChainSpec(t)
	for _, c := range chainConfigs() {
		t.Run(c.name, func(t *testing.T) {
			srv := loadChains(t, spec, c)[0]
			r, w := newChainRequest(), &chainWriter{h: http.Header{}}
			before := chainCount(t, c)
			i := 0
			n := chainRequests(srv, r, w, func() bool { i++; return i <= 3 })
			checkChain(t, c, w, before, n)
		})
	}
	// Every configuration is compared with one without route_metrics.
	byName := map[string]chainConfig{}
	for _, c := range chainConfigs() {
		byName[c.name] = c
	}
	for _, c := range chainConfigs() {
		if c.bare != "" {
			if b, ok := byName[c.bare]; !ok || b.ns != "" || b.bare != "" || b.from != "" || strings.Contains(b.caddyfile(spec), "route_metrics") {
				t.Errorf("%s: compared with %q, which is not a bare configuration", c.name, c.bare)
			}
		}
		if c.noop != "" {
			n, ok := byName[c.noop]
			if !ok || n.from == "" {
				t.Errorf("%s: its noop twin %q is not one", c.name, c.noop)
				continue
			}
			// The twin is c itself once c's route_metrics (and
			// everything configured in them) are lm_bench_noop.
			var a, b any
			_ = json.Unmarshal(chainJSON(t, c, spec), &a)
			_ = json.Unmarshal(chainJSON(t, n, spec), &b)
			replaceRouteMetrics(a)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s: its noop twin %s has another handler structure", c.name, c.noop)
			}
		}
	}
}
