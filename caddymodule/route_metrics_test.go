package routemetrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Route names are unique per test: the registry is process-wide, exactly
// as in Caddy, and tests read exact deltas from it.

func TestOutermostUnnamedCountsAsOther(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_other_"}`)
	before, _ := scrapeShared(t, formatText)
	w := httptest.NewRecorder()
	if err := chain(respond(404, "nope"), site).ServeHTTP(w, caddyRequest("GET", "/missing")); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	want := map[string]float64{
		reqKey("t_other_", "GET", "other", 404):      1,
		durCountKey("t_other_", "GET", "other", 404): 1,
		bytesKey("t_other_", "GET", "other", 404):    4,
		key("t_other_http_request_duration_seconds_bucket", "method", "GET", "endpoint", "other", "status", "404", "le", "+Inf"): 1,
	}
	got := delta(before, after)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s moved by %v, want %v (all moves: %v)", k, got[k], v, got)
		}
	}
	if after[inflightKey("t_other_", "other")] != 0 {
		t.Errorf("in-flight not back to 0: %v", after[inflightKey("t_other_", "other")])
	}
}

func TestNestedCountsOnceUnderInnermost(t *testing.T) {
	site := routeMetrics(t, `{}`)
	api := routeMetrics(t, `{"name":"t_nest_api"}`)
	v2 := routeMetrics(t, `{"name":"t_nest_v2"}`)

	before, _ := scrapeShared(t, formatText)
	// site > api > v2: the innermost name wins.
	for range 3 {
		w := httptest.NewRecorder()
		if err := chain(respond(200, "ok"), site, api, v2).ServeHTTP(w, caddyRequest("GET", "/api/v2/x")); err != nil {
			t.Fatal(err)
		}
	}
	// site > api only.
	w := httptest.NewRecorder()
	if err := chain(respond(201, "made"), site, api).ServeHTTP(w, caddyRequest("POST", "/api/x")); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)

	if got[reqKey("", "GET", "t_nest_v2", 200)] != 3 {
		t.Errorf("innermost route: %v, want 3", got[reqKey("", "GET", "t_nest_v2", 200)])
	}
	if got[reqKey("", "POST", "t_nest_api", 201)] != 1 {
		t.Errorf("api route: %v, want 1", got[reqKey("", "POST", "t_nest_api", 201)])
	}
	// Exactly once: nothing else in requests_total moved.
	if total := requestsMoved(got, ""); total != 4 {
		t.Errorf("requests_total moved by %v in all, want 4: %v", total, got)
	}
	for _, ep := range []string{"t_nest_api", "t_nest_v2"} {
		if v := after[inflightKey("", ep)]; v != 0 {
			t.Errorf("in-flight %s = %v after the requests, want 0", ep, v)
		}
	}
}

func TestInflightMovesToInnermostRoute(t *testing.T) {
	site := routeMetrics(t, `{"name":"t_if_site"}`)
	inner := routeMetrics(t, `{"name":"t_if_inner"}`)
	var siteNow, innerNow int64
	final := func(w http.ResponseWriter, r *http.Request) error {
		siteNow = atomic.LoadInt64(site.route.inflight)
		innerNow = atomic.LoadInt64(inner.route.inflight)
		return nil
	}
	if err := chain(final, site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/")); err != nil {
		t.Fatal(err)
	}
	if siteNow != 0 || innerNow != 1 {
		t.Errorf("during the request: site %d, inner %d; want 0 and 1", siteNow, innerNow)
	}
	if s, i := atomic.LoadInt64(site.route.inflight), atomic.LoadInt64(inner.route.inflight); s != 0 || i != 0 {
		t.Errorf("after the request: site %d, inner %d; want 0 and 0", s, i)
	}
}

// A finishing request leaves the in-flight gauge only after it is counted:
// whenever a reader looks (the gauge first, then the counts, as a scrape
// walks the families), every request that had entered is in one or the
// other. A reader racing the requests checks it on every read; the old
// order (gauge first, then the record) broke it within a few thousand
// requests on a 2-core machine.
func TestFinishingRequestIsInFlightOrCounted(t *testing.T) {
	h := routeMetrics(t, `{"name":"t_order","counters":[{"name":"t_order_total"}]}`)
	counted := h.rules[0].series
	var entered atomic.Int64
	final := func(w http.ResponseWriter, r *http.Request) error {
		entered.Add(1)
		return nil
	}
	handler := chain(final, h)
	const workers, each = 2, 20000
	stop := make(chan struct{})
	var violations, reads atomic.Int64
	var firstE, firstI, firstC int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			e := entered.Load()
			i := atomic.LoadInt64(h.route.inflight)
			c := int64(counted.count())
			reads.Add(1)
			if i+c < e && violations.Add(1) == 1 {
				firstE, firstI, firstC = e, i, c
			}
		}
	}()
	base := int64(counted.count())
	entered.Store(base) // earlier runs of this test (-count) counted too
	concurrently(workers, each, func(_, _ int) {
		_ = handler.ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	})
	close(stop)
	<-readerDone
	if n := violations.Load(); n != 0 {
		t.Errorf("%d of %d reads saw a request neither in flight nor counted (first: entered %d, in flight %d, counted %d)",
			n, reads.Load(), firstE, firstI, firstC)
	}
	if got := int64(counted.count()) - base; got != workers*each {
		t.Errorf("counted %d, want %d", got, workers*each)
	}
}

func TestStatusFromErrorsAndWrites(t *testing.T) {
	site := routeMetrics(t, `{"name":"t_status"}`)
	cases := []struct {
		name   string
		final  caddyhttp.HandlerFunc
		method string
		status int
		bytes  float64
	}{
		{"handler error status", func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.Error(http.StatusTeapot, errors.New("short and stout"))
		}, "GET", 418, 0},
		{"handler error without status", func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.HandlerError{Err: errors.New("no code")}
		}, "PUT", 500, 0},
		{"plain error", func(w http.ResponseWriter, r *http.Request) error {
			return errors.New("boom")
		}, "DELETE", 500, 0},
		{"error after the header was sent", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("partial"))
			return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream cut"))
		}, "PATCH", 202, 7},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) error { return nil }, "OPTIONS", 200, 0},
		{"implicit 200 by Write", func(w http.ResponseWriter, r *http.Request) error {
			_, err := w.Write([]byte("hello"))
			return err
		}, "TRACE", 200, 5},
		{"interim 103 then 204", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}, "CONNECT", 204, 0},
		{"ReadFrom counted", func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.Copy(w, strings.NewReader("0123456789"))
			return err
		}, "HEAD", 200, 10},
		{"lowercase method is OTHER", func(w http.ResponseWriter, r *http.Request) error { return nil }, "get", 200, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			label := c.method
			if methodOf(c.method) == methodOther {
				label = "OTHER"
			}
			before, _ := scrapeShared(t, formatText)
			_ = chain(c.final, site).ServeHTTP(httptest.NewRecorder(), caddyRequest(c.method, "/"))
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			if got[reqKey("", label, "t_status", c.status)] != 1 {
				t.Errorf("want one request with status %d, moves: %v", c.status, got)
			}
			if got[bytesKey("", label, "t_status", c.status)] != c.bytes {
				t.Errorf("response bytes %v, want %v", got[bytesKey("", label, "t_status", c.status)], c.bytes)
			}
		})
	}
}

// A panic keeps propagating and the request is recorded with the status
// the client saw: the one already sent when the final header went out
// before the panic, else 500.
func TestPanicRecordsWhatTheClientSaw(t *testing.T) {
	site := routeMetrics(t, `{}`)
	inner := routeMetrics(t, `{"name":"t_panic"}`)
	for _, c := range []struct {
		name   string
		final  caddyhttp.HandlerFunc
		method string
		status int
		bytes  float64
	}{
		{"before any header", func(w http.ResponseWriter, r *http.Request) error {
			panic("kaboom")
		}, "GET", 500, 0},
		{"after WriteHeader(200)", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(200)
			_, _ = w.Write([]byte("half"))
			panic("kaboom")
		}, "PUT", 200, 4},
		{"after an implicit 200 by Write", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = w.Write([]byte("x"))
			panic("kaboom")
		}, "POST", 200, 1},
		{"after a 204", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(204)
			panic("kaboom")
		}, "DELETE", 204, 0},
		{"after WriteHeader(503)", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(503)
			_, _ = w.Write([]byte("down"))
			panic("kaboom")
		}, "OPTIONS", 503, 4},
		{"after only an interim 103", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusEarlyHints)
			panic("kaboom")
		}, "PATCH", 500, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := scrapeShared(t, formatText)
			func() {
				defer func() {
					if v := recover(); v != "kaboom" {
						t.Errorf("recovered %v, want the original panic value", v)
					}
				}()
				_ = chain(c.final, site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest(c.method, "/"))
				t.Error("the panic did not propagate")
			}()
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			if d := got[reqKey("", c.method, "t_panic", c.status)]; d != 1 {
				t.Errorf("panicking request: %v requests with status %d, want 1 (moves %v)", d, c.status, got)
			}
			if d := got[bytesKey("", c.method, "t_panic", c.status)]; d != c.bytes {
				t.Errorf("response bytes %v, want %v", d, c.bytes)
			}
			if total := requestsMoved(got, ""); total != 1 {
				t.Errorf("requests_total moved by %v in all, want 1: %v", total, got)
			}
			if v := after[inflightKey("", "t_panic")]; v != 0 {
				t.Errorf("in-flight after a panic: %v, want 0", v)
			}
			// A panic after the final header cut the response: counted
			// once as aborted, unless its status already said it failed
			// (5xx); before the header, the 500 is the answer.
			wantAborted := 0.0
			if c.status < 500 {
				wantAborted = 1
			}
			if d := got[abortedKey("", "t_panic")]; d != wantAborted {
				t.Errorf("aborted responses moved by %v, want %v (moves %v)", d, wantAborted, got)
			}
		})
	}
}

// An error returned after the final header went out cut the response too.
func TestErrorAfterHeaderCountsAborted(t *testing.T) {
	site := routeMetrics(t, `{}`)
	inner := routeMetrics(t, `{"name":"t_cut"}`)
	before, _ := scrapeShared(t, formatText)
	err := chain(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("part"))
		return errors.New("copying the body failed")
	}, site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	if err == nil {
		t.Fatal("the error was swallowed")
	}
	_ = chain(respond(200, "whole"), site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	if d := got[reqKey("", "GET", "t_cut", 200)]; d != 2 {
		t.Errorf("requests with status 200: %v, want 2 (moves %v)", d, got)
	}
	if d := got[abortedKey("", "t_cut")]; d != 1 {
		t.Errorf("aborted responses moved by %v, want 1 (moves %v)", d, got)
	}
}

func TestHandleErrorsRouteDoesNotCountAgain(t *testing.T) {
	site := routeMetrics(t, `{}`)
	errRoute := routeMetrics(t, `{"name":"t_errroute"}`)
	r := caddyRequest("GET", "/broken")
	err := chain(func(w http.ResponseWriter, r *http.Request) error {
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("down"))
	}, site).ServeHTTP(httptest.NewRecorder(), r)
	if err == nil {
		t.Fatal("the error was swallowed")
	}
	before, _ := scrapeShared(t, formatText)
	// Caddy then runs the handle_errors routes with the same request.
	if err := chain(respond(503, "sorry"), errRoute).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	for k, v := range delta(before, after) {
		if strings.Contains(k, "http_requests_total") {
			t.Errorf("handle_errors counted the request again: %s +%v", k, v)
		}
	}
}

func TestTrackerWithoutCaddyVars(t *testing.T) {
	site := routeMetrics(t, `{}`)
	inner := routeMetrics(t, `{"name":"t_novars"}`)
	before, _ := scrapeShared(t, formatText)
	r := httptest.NewRequest("GET", "/", nil) // no vars table: context fallback
	if err := chain(respond(200, "x"), site, inner).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	if d := delta(before, after); d[reqKey("", "GET", "t_novars", 200)] != 1 || d[reqKey("", "GET", "other", 200)] != 0 {
		t.Errorf("moves %v", d)
	}
}

func TestNamespaceInheritedByNestedHandlers(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_inh_"}`)
	inner := routeMetrics(t, `{"name":"t_inh_inner"}`)
	own := routeMetrics(t, `{"name":"t_inh_own","namespace":"t_own_"}`)
	before, _ := scrapeShared(t, formatText)
	_ = chain(respond(200, ""), site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	_ = chain(respond(200, ""), site, own).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	for _, k := range []string{reqKey("t_inh_", "GET", "t_inh_inner", 200), reqKey("t_own_", "GET", "t_inh_own", 200)} {
		if got[k] != 1 {
			t.Errorf("%s moved by %v, want 1 (moves %v)", k, got[k], got)
		}
	}
	if got[reqKey("", "GET", "t_inh_inner", 200)] != 0 {
		t.Error("an inheriting handler recorded outside the enclosing namespace")
	}
}

func TestBusinessCounters(t *testing.T) {
	site := routeMetrics(t, `{"counters":[{"name":"t_biz_errors_total","help":"5xx anywhere","statuses":["5xx"]}]}`)
	contact := routeMetrics(t, `{"name":"t_biz_contact","counters":[
		{"name":"t_biz_submissions_total","help":"Contact form submissions accepted",
		 "labels":{"source":"website","service":"fastapi"},"methods":["POST"],"statuses":["2xx"]},
		{"name":"t_biz_conflicts_total","methods":["POST","PUT"],"statuses":["409","410"]}]}`)
	sub := key("t_biz_submissions_total", "service", "fastapi", "source", "website")
	errs := key("t_biz_errors_total")
	conflicts := key("t_biz_conflicts_total")
	send := func(method string, status int) {
		_ = chain(respond(status, ""), site, contact).ServeHTTP(httptest.NewRecorder(), caddyRequest(method, "/contact"))
	}
	before, _ := scrapeShared(t, formatText)
	send("POST", 201) // submission
	send("POST", 200) // submission
	send("GET", 200)  // wrong method
	send("POST", 302) // wrong status
	send("POST", 409) // conflict
	send("PUT", 410)  // conflict
	send("PUT", 411)  // neither
	send("POST", 503) // site-level 5xx counter applies to the inner route too
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	for k, want := range map[string]float64{sub: 2, conflicts: 2, errs: 1} {
		if got[k] != want {
			t.Errorf("%s moved by %v, want %v", k, got[k], want)
		}
	}
	if _, ok := after[sub]; !ok {
		t.Errorf("labels must be exposed in name order; samples: %v", after)
	}
}

func TestBusinessCounterDeclaredTwiceCountsOnce(t *testing.T) {
	js := `{"name":"t_dup","counters":[{"name":"t_dup_total","methods":["GET"]}]}`
	outer := routeMetrics(t, js)
	inner := routeMetrics(t, js)
	before, _ := scrapeShared(t, formatText)
	_ = chain(respond(200, ""), outer, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	after, _ := scrapeShared(t, formatText)
	if d := delta(before, after)[key("t_dup_total")]; d != 1 {
		t.Errorf("t_dup_total moved by %v, want 1", d)
	}
}

func TestConcurrentRequestsExactCounts(t *testing.T) {
	site := routeMetrics(t, `{}`)
	a := routeMetrics(t, `{"name":"t_conc_a","counters":[{"name":"t_conc_posts_total","methods":["POST"]}]}`)
	b := routeMetrics(t, `{"name":"t_conc_b"}`)
	before, _ := scrapeShared(t, formatText)
	const workers, each = 8, 200
	concurrently(workers, each, func(i, j int) {
		inner, method := a, "POST"
		if (i+j)%2 == 1 {
			inner, method = b, "GET"
		}
		_ = chain(respond(200, "ab"), site, inner).ServeHTTP(httptest.NewRecorder(), caddyRequest(method, "/"))
	})
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	half := float64(workers * each / 2)
	for k, want := range map[string]float64{
		reqKey("", "POST", "t_conc_a", 200):      half,
		reqKey("", "GET", "t_conc_b", 200):       half,
		bytesKey("", "GET", "t_conc_b", 200):     2 * half,
		key("t_conc_posts_total"):                half,
		durCountKey("", "POST", "t_conc_a", 200): half,
	} {
		if got[k] != want {
			t.Errorf("%s moved by %v, want %v", k, got[k], want)
		}
	}
	if after[inflightKey("", "t_conc_a")] != 0 || after[inflightKey("", "t_conc_b")] != 0 {
		t.Error("in-flight gauges not back to 0")
	}
}

func TestReloadKeepsHandlesAndCounts(t *testing.T) {
	js := `{"name":"t_reload","namespace":"t_rl_","counters":[{"name":"t_reload_total"}]}`
	old := routeMetrics(t, js)
	_ = chain(respond(200, ""), old).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	// A reload provisions the new config before cleaning up the old one.
	fresh := routeMetrics(t, js)
	if fresh.route != old.route || fresh.http != old.http || fresh.rules[0].series.p != old.rules[0].series.p {
		t.Fatal("a reload must get the same libmetrics handles back")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	_ = chain(respond(200, ""), fresh).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
	after, _ := scrapeShared(t, formatText)
	if v := after[reqKey("t_rl_", "GET", "t_reload", 200)]; v != 2 {
		t.Errorf("count across the reload: %v, want 2", v)
	}
	if v := after[key("t_reload_total")]; v != 2 {
		t.Errorf("business counter across the reload: %v, want 2", v)
	}
}

func TestBucketsFollowLiveConfig(t *testing.T) {
	bucket := func(le string) string {
		return key("t_bk_http_request_duration_seconds_bucket", "method", "GET", "endpoint", "t_bk", "status", "200", "le", le)
	}
	hit := func(h *RouteMetrics) exposition {
		_ = chain(respond(200, ""), h).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
		e, _ := scrapeShared(t, formatText)
		return e
	}
	first := routeMetrics(t, `{"name":"t_bk","namespace":"t_bk_","buckets":[0.125,2]}`)
	if e := hit(first); e[bucket("0.125")] != 1 || e[bucket("+Inf")] != 1 {
		t.Fatalf("custom buckets not in use: %v", e)
	}
	// Reload with other buckets: new config provisioned, then old cleaned up.
	// The histogram keeps counting: both requests, each under 0.125 s.
	second := routeMetrics(t, `{"name":"t_bk","namespace":"t_bk_","buckets":[0.3]}`)
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	e := hit(second)
	if _, ok := e[bucket("0.125")]; ok {
		t.Error("replaced buckets still exposed")
	}
	if e[bucket("0.3")] != 2 || e[bucket("+Inf")] != 2 {
		t.Errorf("new buckets not in use or not counting on: le=0.3 %v +Inf %v, want 2 2",
			e[bucket("0.3")], e[bucket("+Inf")])
	}
	// Reload that drops the buckets line: back to the defaults once the
	// last handler that declared buckets is gone.
	third := routeMetrics(t, `{"name":"t_bk","namespace":"t_bk_"}`)
	if err := second.Cleanup(); err != nil {
		t.Fatal(err)
	}
	e = hit(third)
	if _, ok := e[bucket("0.3")]; ok {
		t.Error("dropped buckets still exposed")
	}
	for _, le := range []string{"0.001", "0.0025", "10.0"} {
		if _, ok := e[bucket(le)]; !ok {
			t.Errorf("default bucket le=%s not restored", le)
		}
	}
	// 0.25 bounds every request (all faster than 0.125 s, a bound the
	// histogram counted in from the start).
	if e[bucket("+Inf")] != 3 || e[bucket("0.25")] != 3 {
		t.Errorf("after the reload back: +Inf %v le=0.25 %v, want 3 3 (every request, counted on)",
			e[bucket("+Inf")], e[bucket("0.25")])
	}
}

// When the bucket list in force loses its last handler while other lists
// are still declared, the newest declaration wins, every time (not the
// first one a map iteration happens to yield).
func TestBucketsNextListIsNewest(t *testing.T) {
	const ns = "t_nw_"
	mk := func(b string) *RouteMetrics {
		return routeMetrics(t, `{"name":"t_nw","namespace":"`+ns+`","buckets":[`+b+`]}`)
	}
	current := func() string {
		global.mu.Lock()
		defer global.mu.Unlock()
		return global.namespaces[ns].current
	}
	for round := range 25 {
		hs := []*RouteMetrics{mk("0.1"), mk("0.2"), mk("0.3"), mk("0.4"), mk("0.5")}
		for i, want := range []string{"0.4", "0.3", "0.2", "0.1"} {
			if err := hs[len(hs)-1-i].Cleanup(); err != nil {
				t.Fatal(err)
			}
			if got := current(); got != want+"," {
				t.Fatalf("round %d: after the list in force went, %q is in force, want the newest remaining %s",
					round, got, want)
			}
		}
		// A handler that is not in force going away changes nothing; the
		// last one going brings the defaults back.
		extra := mk("0.6")
		if err := hs[0].Cleanup(); err != nil || current() != "0.6," {
			t.Fatalf("round %d: %q in force after a stale list went (%v)", round, current(), err)
		}
		if err := extra.Cleanup(); err != nil || current() != "" {
			t.Fatalf("round %d: %q in force after the last list went (%v)", round, current(), err)
		}
	}
}

func TestValidateRejectsBadJSONConfig(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"namespace":"9x_"}`, `namespace "9x_" must match`},
		{`{"buckets":[1,0.5]}`, "strictly increasing"},
		{`{"counters":[{"name":"nototal"}]}`, `must end in "_total"`},
		{`{"counters":[{"name":"a_total","labels":{"le-x":"1"}}]}`, `label name "le-x" must match`},
		{`{"counters":[{"name":"a_total","statuses":["6xx"]}]}`, `status condition "6xx"`},
		{`{"counters":[{"name":"a_total","methods":["post"]}]}`, `did you mean "POST"`},
		{`{"counters":[{"name":"http_requests_total"}]}`, "collides with the built-in metric http_requests"},
		{`{"namespace":"s_","counters":[{"name":"s_http_requests_in_progress_total"}]}`, "collides with the built-in metric s_http_requests_in_progress"},
		{`{"counters":[{"name":"go_goroutines_total"}]}`, "collides with the built-in metric go_goroutines"},
		{`{"counters":[{"name":"a_total"},{"name":"a_total"}]}`, "declared twice"},
		{`{"latency":"ttfb"}`, `latency "ttfb" must be complete`},
		{`{"latency":"First_Byte"}`, `latency "First_Byte" must be`},
		{`{"counters":[{"name":"s_http_upgraded_connections_in_progress_total"}],"namespace":"s_"}`, "collides with the built-in metric s_http_upgraded_connections_in_progress"},
		{`{"counters":[{"name":"http_request_size_bytes_total"}]}`, "collides with the built-in metric http_request_size_bytes"},
	} {
		h := new(RouteMetrics)
		if err := decodeStrict(c.js, h); err != nil {
			t.Fatal(err)
		}
		err := h.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.js, err, c.want)
		}
	}
}

func TestMethodMapping(t *testing.T) {
	for m, want := range map[string]methodIndex{
		"GET": methodGet, "HEAD": methodHead, "POST": methodPost, "PUT": methodPut,
		"DELETE": methodDelete, "CONNECT": methodConnect, "OPTIONS": methodOptions,
		"TRACE": methodTrace, "PATCH": methodPatch,
		"get": methodOther, "PURGE": methodOther, "": methodOther, "GET ": methodOther, "PROPFIND": methodOther,
	} {
		if got := methodOf(m); got != want {
			t.Errorf("methodOf(%q) = %d, want %d", m, got, want)
		}
	}
	if int(methodOther)+1 != methodCount {
		t.Error("OTHER must be the last method index")
	}
}

func TestStatusConditions(t *testing.T) {
	for _, c := range []struct {
		conds []string
		yes   []int
		no    []int
	}{
		{[]string{"2xx"}, []int{200, 201, 299}, []int{199, 300, 500}},
		{[]string{"2XX", "404"}, []int{204, 404}, []int{403, 405, 301}},
		{[]string{"1xx", "5xx"}, []int{100, 101, 503, 599}, []int{200, 600, 99}},
		{[]string{"201"}, []int{201}, []int{200, 202}},
	} {
		var set statusSet
		for _, s := range c.conds {
			one, err := parseStatusCond(s)
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			set.union(one)
		}
		for _, code := range c.yes {
			if !set.has(code) {
				t.Errorf("%v should match %d", c.conds, code)
			}
		}
		for _, code := range c.no {
			if set.has(code) {
				t.Errorf("%v should not match %d", c.conds, code)
			}
		}
	}
	for _, bad := range []string{"6xx", "0xx", "2x", "20", "2000", "099", "600", "abc", "", "2yy", "+20"} {
		if _, err := parseStatusCond(bad); err == nil {
			t.Errorf("status condition %q accepted", bad)
		}
	}
	if (&statusSet{}).has(-1) || (&statusSet{}).has(640) {
		t.Error("out-of-range codes must not match")
	}
}

// Every handler's business counters count however deep the nesting: twelve
// nested route_metrics with three counters each (36, more than one record
// call's batch holds), on the plain record path and on the extended one
// (request_id).
func TestDeepNestingCountsEveryHandlersCounters(t *testing.T) {
	for _, path := range []struct{ name, site string }{
		{"plain", `{}`},
		{"extended", `{"request_id":"X-Request-ID"}`},
	} {
		t.Run(path.name, func(t *testing.T) {
			const depth = 12
			mws := []caddyhttp.MiddlewareHandler{routeMetrics(t, path.site)}
			var names []string
			for i := range depth {
				var counters []string
				for j := range 3 {
					n := fmt.Sprintf("t_deep_%s_%d_%d_total", path.name, i, j)
					names = append(names, n)
					counters = append(counters, fmt.Sprintf(`{"name":%q}`, n))
				}
				mws = append(mws, routeMetrics(t, fmt.Sprintf(`{"name":"t_deep_%s_%d","counters":[%s]}`,
					path.name, i, strings.Join(counters, ","))))
			}
			before, _ := scrapeShared(t, formatText)
			if err := chain(respond(200, "ok"), mws...).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/")); err != nil {
				t.Fatal(err)
			}
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			for _, n := range names {
				if got[key(n)] != 1 {
					t.Errorf("%s moved by %v, want 1", n, got[key(n)])
				}
			}
			inner := fmt.Sprintf("t_deep_%s_%d", path.name, depth-1)
			if got[reqKey("", "GET", inner, 200)] != 1 {
				t.Errorf("request not counted once under the innermost route %s: %v", inner, got)
			}
		})
	}
}
