package routemetrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() { registerTestDirective("lm_gate_probe", gateProbeHandler{}) }

// Trackers are pooled (tracker.go). These tests hold what makes that safe:
// nothing a finished request left behind reaches a tracker another request
// now uses. Run them with -race (tests/go.sh does): sync.Pool under the
// race detector also drops and reorders items at random, which shakes out
// reuse that depends on luck.

// serveMany serves n GET requests through h concurrently from 4
// goroutines, so recycled trackers are taken and returned meanwhile.
func serveMany(t *testing.T, h caddyhttp.Handler, n int) {
	t.Helper()
	concurrently(4, n/4, func(_, _ int) {
		if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/other")); err != nil {
			t.Error(err)
		}
	})
}

// A request that failed leaves recordedTracker in its vars table, not the
// tracker (back in the pool, in use by other requests by the time Caddy
// runs handle_errors): the error route neither counts it again nor
// touches another request's tracker.
func TestPooledTrackerLeavesTheVarsTable(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_ex_"}`)
	api := routeMetrics(t, `{"name":"t_ex_api"}`)
	errRoute := routeMetrics(t, `{"name":"t_ex_err"}`)
	failing := chain(func(w http.ResponseWriter, r *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("down"))
	}, site, api)
	other := chain(respond(200, "ok"), site)

	before, _ := scrapeShared(t, formatText)
	r := caddyRequest("GET", "/api/broken")
	if err := failing.ServeHTTP(httptest.NewRecorder(), r); err == nil {
		t.Fatal("the error was swallowed")
	}
	vars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if vars[trackerVar] != recordedTracker {
		t.Fatalf("vars table holds %v after the request, want recordedTracker", vars[trackerVar])
	}
	serveMany(t, other, 200)
	// handle_errors, with the failed request.
	if err := chain(respond(502, "sorry"), errRoute).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	if got[reqKey("t_ex_", "GET", "t_ex_api", 502)] != 1 || got[reqKey("t_ex_", "GET", "other", 200)] != 200 ||
		requestsMoved(got, "t_ex_") != 201 || requestsMoved(got, "") != 0 {
		t.Errorf("moves %v; want the failed request once and the 200 others", got)
	}
	if after[inflightKey("t_ex_", "t_ex_api")] != 0 || after[inflightKey("t_ex_", "other")] != 0 {
		t.Error("in-flight not back to 0")
	}
}

// reverse_proxy's transport writes the request body upstream from a
// goroutine of its own, which may still read it after the handler
// returned and the request was recorded. The body counter is not part of
// the pooled tracker: late reads count nowhere (the request was recorded
// with what had been read), and never into another request.
func TestBodyReadAfterTheRequestWasRecorded(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_ex_","name":"t_late"}`)
	body := strings.Repeat("x", 1000)
	release := make(chan struct{})
	var readers sync.WaitGroup
	lateReader := chain(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.ReadFull(r.Body, make([]byte, 100)); err != nil {
			return err
		}
		readers.Add(1)
		go func(b io.Reader) { // the transport, after the response
			defer readers.Done()
			<-release
			_, _ = io.Copy(io.Discard, b)
		}(r.Body)
		w.WriteHeader(201)
		return nil
	}, site)
	readAll := chain(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		w.WriteHeader(200)
		return nil
	}, site)

	before, _ := scrapeShared(t, formatText)
	for range 20 {
		if err := lateReader.ServeHTTP(httptest.NewRecorder(), caddyRequestBody("POST", body, int64(len(body)))); err != nil {
			t.Fatal(err)
		}
	}
	// Other requests take the recycled trackers while the late readers run.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if err := readAll.ServeHTTP(httptest.NewRecorder(), caddyRequestBody("PUT", "0123456789", 10)); err != nil {
				t.Error(err)
			}
		}
	}()
	close(release)
	wg.Wait()
	readers.Wait()
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	if v := got[reqSizeKey("t_ex_", "POST", "t_late", 201)]; v != 20*100 {
		t.Errorf("request bytes of the late-read requests: %v, want %v (what was read before they were recorded)", v, 20*100)
	}
	if v := got[reqSizeKey("t_ex_", "PUT", "t_late", 200)]; v != 50*10 {
		t.Errorf("request bytes of the other requests: %v, want %v", v, 50*10)
	}
}

// A panicking request keeps its tracker out of the pool: the unwinding
// (and Caddy's recovery, handle_errors) may still reach it through the
// vars table, where it stays, marked recorded.
func TestPanickedRequestKeepsItsTracker(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_ex_","name":"t_ex_panic"}`)
	r := caddyRequest("GET", "/")
	func() {
		defer func() { _ = recover() }()
		_ = chain(func(w http.ResponseWriter, r *http.Request) error { panic("kaboom") }, site).
			ServeHTTP(httptest.NewRecorder(), r)
	}()
	vars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	tr, ok := vars[trackerVar].(*tracker)
	if !ok || tr == recordedTracker || !tr.done || tr.vars == nil {
		t.Fatalf("vars table holds %#v, want the request's own tracker, recorded", vars[trackerVar])
	}
}

// The latency is measured from the time Caddy started handling the
// request (the vars table's start_time, the start of
// {http.request.duration}), not from when route_metrics was reached.
func TestLatencyFromCaddysStartTime(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_upb_","name":"t_start","buckets":[0.002,0.02]}`)
	r := caddyRequest("GET", "/")
	caddyhttp.SetVar(r.Context(), startTimeVar, time.Now().Add(-200*time.Millisecond))
	before, _ := scrapeShared(t, formatText)
	if err := chain(respond(200, "ok"), site).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	b := func(le string) string {
		return key("t_upb_http_request_duration_seconds_bucket", "method", "GET", "endpoint", "t_start", "status", "200", "le", le)
	}
	if got[b("0.02")] != 0 || got[b("+Inf")] != 1 {
		t.Errorf("latency buckets moved %v / %v, want 0 / 1 (200 ms since Caddy's start); moves %v", got[b("0.02")], got[b("+Inf")], got)
	}
	// Without Caddy's start time (not a time.Time, or no vars table), the
	// clock starts at the handler.
	r = caddyRequest("GET", "/")
	caddyhttp.SetVar(r.Context(), startTimeVar, "not a time")
	before = after
	if err := chain(respond(200, "ok"), site).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ = scrapeShared(t, formatText)
	if got := delta(before, after); got[b("0.02")] != 1 {
		t.Errorf("without a start time: le=0.02 moved %v, want 1", got[b("0.02")])
	}
}

// Many requests at once through pooled trackers, nested, with request
// IDs, bodies, errors and business counters: exact counts, in-flight
// back to 0, the right ID on every response.
func TestPooledTrackersUnderConcurrency(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_ex_","request_id":"X-Request-ID"}`)
	api := routeMetrics(t, `{"name":"t_pc_api","counters":[{"name":"t_ex_posts_total","methods":["POST"],"statuses":["2xx"]}]}`)
	final := func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		if r.Method == "DELETE" {
			return caddyhttp.Error(http.StatusConflict, errors.New("no"))
		}
		w.WriteHeader(201)
		_, err := w.Write([]byte("made"))
		return err
	}
	h := chain(final, site, api)
	before, _ := scrapeShared(t, formatText)
	const workers, each = 8, 150
	concurrently(workers, each, func(i, j int) {
		id := fmt.Sprintf("w%d-r%d", i, j)
		var r *http.Request
		if j%3 == 0 {
			r = caddyRequest("DELETE", "/api/x")
		} else {
			r = caddyRequestBody("POST", "0123456789", 10)
		}
		r.Header.Set("X-Request-ID", id)
		w := httptest.NewRecorder()
		_ = h.ServeHTTP(w, r)
		if got := w.Header().Values("X-Request-ID"); len(got) != 1 || got[0] != id {
			t.Errorf("response X-Request-ID %q, want [%s]", got, id)
		}
	})
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	deletes := float64(workers * ((each + 2) / 3))
	posts := float64(workers*each) - deletes
	for k, want := range map[string]float64{
		reqKey("t_ex_", "POST", "t_pc_api", 201):     posts,
		reqKey("t_ex_", "DELETE", "t_pc_api", 409):   deletes,
		reqSizeKey("t_ex_", "POST", "t_pc_api", 201): 10 * posts,
		key("t_ex_posts_total"):                      posts,
	} {
		if got[k] != want {
			t.Errorf("%s moved by %v, want %v", k, got[k], want)
		}
	}
	if requestsMoved(got, "t_ex_") != posts+deletes {
		t.Errorf("requests moved %v in all, want %v", requestsMoved(got, "t_ex_"), posts+deletes)
	}
	if after[inflightKey("t_ex_", "t_pc_api")] != 0 || after[inflightKey("t_ex_", "other")] != 0 {
		t.Error("in-flight not back to 0")
	}
}

// The upstream latency is read only for requests reverse_proxy prepared
// (proxyPreparedVar). With Caddy's real reverse_proxy, loaded by Caddy:
// the vars entry is there, the latency is recorded, the request body goes
// upstream through the counting reader; a request the proxy never saw
// records no upstream latency.
func TestUpstreamGate(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d", n)
	}))
	defer upstream.Close()
	hostport := strings.TrimPrefix(upstream.URL, "http://")
	var sawVar bool
	gateProbe = func(vars map[string]any) { _, sawVar = vars[proxyPreparedVar] }
	defer func() { gateProbe = nil }()
	cfg, err := adapt(fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	log default {
		output discard
	}
	order lm_gate_probe first
}
http://127.0.0.1:0 {
	lm_gate_probe
	route_metrics {
		namespace t_up_
	}
	handle /proxied/* {
		route_metrics t_gate_proxied
		reverse_proxy %s
	}
	handle {
		route_metrics t_gate_local
		respond "here"
	}
}`, hostport))
	if err != nil {
		t.Fatal(err)
	}
	srv := loadServer(t, cfg)
	before, _ := scrapeShared(t, formatText)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("POST", "http://127.0.0.1/proxied/x", strings.NewReader("0123456789")))
	if w.Code != 200 || w.Body.String() != "got 10" || !sawVar {
		t.Fatalf("proxied: %d %q, vars entry seen %v", w.Code, w.Body.String(), sawVar)
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/here", nil))
	if w.Code != 200 || sawVar {
		t.Fatalf("local: %d, vars entry seen %v", w.Code, sawVar)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	up := func(ep string) string {
		return key("t_up_http_upstream_duration_seconds_count", "endpoint", ep, "upstream", hostport)
	}
	if got[up("t_gate_proxied")] != 1 || got[reqSizeKey("t_up_", "POST", "t_gate_proxied", 200)] != 10 ||
		got[reqKey("t_up_", "GET", "t_gate_local", 200)] != 1 {
		t.Errorf("moves %v; want one upstream observation, 10 request bytes, one local request", got)
	}
	for k := range got {
		if strings.Contains(k, "upstream") && strings.Contains(k, `endpoint="t_gate_local"`) {
			t.Errorf("the local request recorded an upstream latency: %s", k)
		}
	}
}

// gateProbe, when set, sees the vars table as lm_gate_probe's next
// handler returns (after the whole chain ran).
var gateProbe func(vars map[string]any)

type gateProbeHandler struct{}

func (gateProbeHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.lm_gate_probe", New: func() caddy.Module { return new(gateProbeHandler) }}
}

func (gateProbeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	err := next.ServeHTTP(w, r)
	if gateProbe != nil {
		gateProbe(r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any))
	}
	return err
}

// The same with Caddy's real reverse_proxy: an upstream that answers
// before reading the request body leaves Go's transport writing the body
// (reading it through the counting reader) from its own goroutine after
// the response came back, the handler returned and the tracker went back
// to the pool, while other requests on the server take the recycled
// trackers. Under -race, any access of the late reader to a pooled
// tracker shows; the counts stay exact.
//
// Whether the transport still reads a body after the handler returned is
// up to the scheduler (it stops once the upstream's close reaches it), so
// POSTs go on, up to maxPosts, until one such read was seen.
func TestProxiedBodyReadAfterTheRecordWithRealReverseProxy(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // nothing drains the body for the next request
		_, _ = io.WriteString(w, "early")
	}))
	defer upstream.Close()
	cfg, err := adapt(fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	log default {
		output discard
	}
}
http://127.0.0.1:0 {
	route_metrics {
		namespace t_up_
	}
	handle /proxied/* {
		route_metrics t_late_proxied
		reverse_proxy %s
	}
	handle {
		route_metrics t_late_local
		respond "here"
	}
}`, strings.TrimPrefix(upstream.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	srv := loadServer(t, cfg)
	const bodySize = 4 << 20
	const minPosts, maxPosts, gets = 20, 400, 400
	before, _ := scrapeShared(t, formatText)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		concurrently(4, gets/4, func(_, _ int) {
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/here", nil))
			if w.Code != 200 {
				t.Errorf("local: %d", w.Code)
			}
		})
	}()
	var late atomic.Int64 // body reads after ServeHTTP returned
	posts := 0
	for ; posts < minPosts || (late.Load() == 0 && posts < maxPosts); posts++ {
		w := httptest.NewRecorder()
		body := &watchedBody{Reader: strings.NewReader(strings.Repeat("x", bodySize)), late: &late}
		r := httptest.NewRequest("POST", "http://127.0.0.1/proxied/x", body)
		r.ContentLength = bodySize
		srv.ServeHTTP(w, r)
		body.returned.Store(true)
		if w.Code != 200 || w.Body.String() != "early" {
			t.Fatalf("proxied: %d %q", w.Code, w.Body.String())
		}
	}
	wg.Wait()
	upstream.CloseClientConnections()
	upstream.Close() // waits for the connections, so the transport's writes ended
	if late.Load() == 0 {
		t.Fatalf("no body read after a request was recorded in %d POSTs: the test proves nothing", posts)
	}
	t.Logf("%d body reads after their request was recorded, in %d POSTs", late.Load(), posts)
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	if got[reqKey("t_up_", "POST", "t_late_proxied", 200)] != float64(posts) || got[reqKey("t_up_", "GET", "t_late_local", 200)] != gets ||
		requestsMoved(got, "t_up_") != float64(posts+gets) {
		t.Errorf("moves %v; want %d proxied POSTs and %d local GETs", got, posts, gets)
	}
	if sz := got[reqSizeKey("t_up_", "POST", "t_late_proxied", 200)]; sz > float64(posts*bodySize) {
		t.Errorf("request bytes %v, more than the %d sent", sz, posts*bodySize)
	}
	if after[inflightKey("t_up_", "t_late_proxied")] != 0 || after[inflightKey("t_up_", "t_late_local")] != 0 {
		t.Error("in-flight not back to 0")
	}
}

// watchedBody counts the reads made after returned was set.
type watchedBody struct {
	io.Reader
	returned atomic.Bool
	late     *atomic.Int64
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.returned.Load() {
		b.late.Add(1)
	}
	return b.Reader.Read(p)
}
