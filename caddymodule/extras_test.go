package routemetrics

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Request IDs, upstream latency, Server-Timing and exemplars through the
// handler, as a Caddy server would drive it.

// caddyRequestWithRepl is caddyRequest plus the per-request replacer a Caddy
// server puts in the context (reverse_proxy leaves its figures there).
func caddyRequestWithRepl(method, target string) (*http.Request, *caddy.Replacer) {
	r := caddyRequest(method, target)
	repl := caddy.NewReplacer()
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)), repl
}

// scrapeOM returns OpenMetrics samples (exemplars cut off) and, per sample
// key, its exemplar text `{...} value timestamp`.
func scrapeOM(t *testing.T) (exposition, map[string]string, string) {
	t.Helper()
	_, body := scrapeShared(t, formatOpenMetrics)
	values, ex := exposition{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sample := line
		if i := strings.Index(line, " # {"); i >= 0 {
			sample = line[:i]
			ex[sample[:strings.LastIndexByte(sample, ' ')]] = line[i+3:]
		}
		i := strings.LastIndexByte(sample, ' ')
		v, err := strconv.ParseFloat(sample[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		values[sample[:i]] = v
	}
	return values, ex, body
}

// echoUpstream stands in for reverse_proxy: it sees the request headers
// the upstream would, echoes the request ID back (as many apps do) and
// leaves the replacer values reverse_proxy sets.
type upstreamSim struct {
	sawID    string
	latency  time.Duration
	hostport string
	timing   []string
	status   int
}

func (u *upstreamSim) handler(repl *caddy.Replacer) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		u.sawID = r.Header.Get("X-Request-ID")
		if u.sawID != "" {
			w.Header().Add("X-Request-ID", u.sawID)
		}
		for _, v := range u.timing {
			w.Header().Add("Server-Timing", v)
		}
		if u.hostport != "" {
			leaveUpstream(r, repl, u.hostport, u.latency)
		}
		status := u.status
		if status == 0 {
			status = 200
		}
		w.WriteHeader(status)
		_, err := w.Write([]byte("ok"))
		return err
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestIDPropagation(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_rid_","request_id":"X-Request-ID"}`)
	api := routeMetrics(t, `{"name":"t_rid_api"}`)

	// Client sends an ID: the upstream sees it, the client gets exactly it
	// back once although the upstream echoed it.
	u := &upstreamSim{}
	r, repl := caddyRequestWithRepl("GET", "/api")
	r.Header.Set("X-Request-ID", "client-id-1")
	w := httptest.NewRecorder()
	if err := chain(u.handler(repl), site, api).ServeHTTP(w, r); err != nil {
		t.Fatal(err)
	}
	if u.sawID != "client-id-1" {
		t.Errorf("upstream saw %q", u.sawID)
	}
	if got := w.Result().Header.Values("X-Request-ID"); len(got) != 1 || got[0] != "client-id-1" {
		t.Errorf("client got X-Request-ID %q, want exactly [client-id-1]", got)
	}

	// No ID: Caddy's {http.request.uuid} is used (the access log's "uuid").
	u = &upstreamSim{}
	r, repl = caddyRequestWithRepl("GET", "/api")
	repl.Set(replRequestUUID, "uuid-from-caddy")
	w = httptest.NewRecorder()
	_ = chain(u.handler(repl), site, api).ServeHTTP(w, r)
	if u.sawID != "uuid-from-caddy" || w.Result().Header.Get("X-Request-ID") != "uuid-from-caddy" {
		t.Errorf("upstream saw %q, client got %q; want uuid-from-caddy both", u.sawID, w.Result().Header.Get("X-Request-ID"))
	}

	// Outside a Caddy server (no replacer): a fresh v4 UUID.
	u = &upstreamSim{}
	w = httptest.NewRecorder()
	_ = chain(u.handler(nil), site, api).ServeHTTP(w, caddyRequest("GET", "/api"))
	if id := w.Result().Header.Get("X-Request-ID"); !uuidRE.MatchString(id) || id != u.sawID {
		t.Errorf("generated ID %q (upstream saw %q) is not one v4 UUID", id, u.sawID)
	}

	// An error response (nothing written by the chain) still carries it.
	r, _ = caddyRequestWithRepl("GET", "/api")
	r.Header.Set("X-Request-ID", "on-error")
	w = httptest.NewRecorder()
	fail := func(http.ResponseWriter, *http.Request) error { return caddyhttp.Error(502, nil) }
	_ = chain(fail, site, api).ServeHTTP(w, r)
	if got := w.Result().Header.Get("X-Request-ID"); got != "on-error" {
		t.Errorf("error response carries X-Request-ID %q", got)
	}

	// Without request_id nothing is added.
	plain := routeMetrics(t, `{"name":"t_rid_plain"}`)
	w = httptest.NewRecorder()
	_ = chain(respond(200, "x"), plain).ServeHTTP(w, caddyRequest("GET", "/"))
	if _, ok := w.Result().Header["X-Request-Id"]; ok {
		t.Error("X-Request-ID set without request_id")
	}
}

func TestExemplarsCarryTheRequestID(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_ex_","request_id":"X-Request-ID"}`)
	api := routeMetrics(t, `{"name":"t_ex_api"}`)
	u := &upstreamSim{hostport: "10.0.0.7:8081", latency: 7 * time.Millisecond}
	send := func(id string) {
		r, repl := caddyRequestWithRepl("GET", "/api")
		r.Header.Set("X-Request-ID", id)
		_ = chain(u.handler(repl), site, api).ServeHTTP(httptest.NewRecorder(), r)
	}
	send("abc-123")
	_, ex, body := scrapeOM(t)
	reqs := reqKey("t_ex_", "GET", "t_ex_api", 200)
	if got := ex[reqs]; !strings.HasPrefix(got, `{request_id="abc-123"} 1 `) {
		t.Errorf("%s exemplar %q, want request_id abc-123 with value 1\n%s", reqs, got, body)
	}
	// The latency bucket the request fell in has it too, and so does the
	// upstream bucket of 7 ms (le 0.01).
	found := false
	for k, v := range ex {
		if strings.HasPrefix(k, "t_ex_http_request_duration_seconds_bucket{") && strings.Contains(k, `endpoint="t_ex_api"`) &&
			strings.HasPrefix(v, `{request_id="abc-123"} `) {
			found = true
		}
	}
	if !found {
		t.Errorf("no latency bucket exemplar with abc-123:\n%s", body)
	}
	upb := key("t_ex_http_upstream_duration_seconds_bucket", "endpoint", "t_ex_api", "upstream", "10.0.0.7:8081", "le", "0.01")
	if got := ex[upb]; !strings.HasPrefix(got, `{request_id="abc-123"} 0.007 `) {
		t.Errorf("%s exemplar %q", upb, got)
	}
	// Escaped, and latest wins.
	send(`q"uo\te`)
	_, ex, _ = scrapeOM(t)
	if got := ex[reqs]; !strings.HasPrefix(got, `{request_id="q\"uo\\te"} 1 `) {
		t.Errorf("escaped exemplar %q", got)
	}
	// Braces (Python's prometheus_client cannot read them) and over-long
	// IDs (label set > 128 characters) give no exemplar: the last one stays.
	send("has{brace}")
	send(strings.Repeat("x", 119))
	_, ex, _ = scrapeOM(t)
	if got := ex[reqs]; !strings.HasPrefix(got, `{request_id="q\"uo\\te"} 1 `) {
		t.Errorf("exemplar after refused IDs: %q", got)
	}
	send(strings.Repeat("y", 118)) // exactly 128 characters with the label name
	_, ex, _ = scrapeOM(t)
	if got := ex[reqs]; !strings.HasPrefix(got, `{request_id="`+strings.Repeat("y", 118)+`"} 1 `) {
		t.Errorf("128-character exemplar: %q", got)
	}
	// Never in text 0.0.4.
	_, text := scrapeShared(t, formatText)
	if strings.Contains(text, "request_id") || strings.Contains(text, " # {") {
		t.Error("text exposition carries an exemplar")
	}
}

func TestUpstreamLatencyHistogram(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_up_"}`)
	api := routeMetrics(t, `{"name":"t_up_api"}`)
	before, _ := scrapeShared(t, formatText)
	for _, u := range []*upstreamSim{
		{hostport: "127.0.0.1:9001", latency: 3 * time.Millisecond},
		{hostport: "127.0.0.1:9001", latency: 40 * time.Millisecond},
		{hostport: "127.0.0.1:9002", latency: 1500 * time.Microsecond, status: 503},
		{}, // not proxied: no upstream observation
	} {
		r, repl := caddyRequestWithRepl("GET", "/api")
		_ = chain(u.handler(repl), site, api).ServeHTTP(httptest.NewRecorder(), r)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	k := func(suffix, up string, extra ...string) string {
		return key("t_up_http_upstream_duration_seconds"+suffix, append([]string{"endpoint", "t_up_api", "upstream", up}, extra...)...)
	}
	for name, want := range map[string]float64{
		k("_count", "127.0.0.1:9001"):                   2,
		k("_sum", "127.0.0.1:9001"):                     0.043,
		k("_bucket", "127.0.0.1:9001", "le", "0.005"):   1,
		k("_bucket", "127.0.0.1:9001", "le", "0.05"):    2,
		k("_count", "127.0.0.1:9002"):                   1,
		k("_sum", "127.0.0.1:9002"):                     0.0015,
		reqKey("t_up_", "GET", "t_up_api", 200):         3,
		durCountKey("t_up_", "GET", "t_up_api", 503):    1,
		k("_bucket", "127.0.0.1:9002", "le", "+Inf"):    1,
		k("_bucket", "127.0.0.1:9002", "le", "0.001"):   0,
		k("_bucket", "127.0.0.1:9001", "le", "0.0025"):  0,
		k("_bucket", "127.0.0.1:9001", "le", "0.025"):   1,
		k("_bucket", "127.0.0.1:9001", "le", "+Inf"):    2,
		k("_bucket", "127.0.0.1:9002", "le", "0.0025"):  1,
		k("_bucket", "127.0.0.1:9002", "le", "0.00125"): 0, // not a default bound: absent
	} {
		if got[name] != want {
			t.Errorf("%s moved by %v, want %v", name, got[name], want)
		}
	}
	// The replaced histogram follows the namespace's buckets.
	nb := routeMetrics(t, `{"namespace":"t_upb_","buckets":[0.002,0.02]}`)
	inner := routeMetrics(t, `{"name":"t_upb_api"}`)
	r, repl := caddyRequestWithRepl("GET", "/")
	_ = chain((&upstreamSim{hostport: "h:1", latency: 10 * time.Millisecond}).handler(repl), nb, inner).ServeHTTP(httptest.NewRecorder(), r)
	after, _ = scrapeShared(t, formatText)
	if v := after[key("t_upb_http_upstream_duration_seconds_bucket", "endpoint", "t_upb_api", "upstream", "h:1", "le", "0.02")]; v != 1 {
		t.Errorf("upstream histogram does not use the namespace's buckets: le=0.02 is %v", v)
	}
}

func TestServerTimingThroughTheHandler(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_sth_","server_timing":{"strip":true,"metrics":[
		{"name":"db","queries":"t_sth_db_queries_total","duration":"t_sth_db_query_duration_seconds",
		 "operations":["select","insert","update","delete"]}]}}`)
	contact := routeMetrics(t, `{"name":"t_sth_contact"}`)
	before, _ := scrapeShared(t, formatText)
	send := func(timing ...string) *http.Response {
		r, repl := caddyRequestWithRepl("POST", "/contact")
		w := httptest.NewRecorder()
		u := &upstreamSim{timing: timing}
		_ = chain(u.handler(repl), site, contact).ServeHTTP(w, r)
		return w.Result()
	}
	resp := send(`db;desc="select";dur=3.2, db;desc="insert";dur=7.5`)
	if v := resp.Header.Values("Server-Timing"); len(v) != 0 {
		t.Errorf("strip left Server-Timing %q", v)
	}
	send(`db;desc="SELECT";dur=0.8`, `db;desc=merge;dur=1`, `cache;dur=4`)
	send(`db;dur=-1, db;desc=delete;dur=2`) // one malformed entry, one good
	send(`db;desc=select;dur=` + strings.Repeat("9", 9000))
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	q := func(op string) string {
		return key("t_sth_db_queries_total", "endpoint", "t_sth_contact", "operation", op)
	}
	d := func(suffix, op string) string {
		return key("t_sth_db_query_duration_seconds"+suffix, "endpoint", "t_sth_contact", "operation", op)
	}
	for name, want := range map[string]float64{
		q("select"):           2,
		q("insert"):           1,
		q("delete"):           1,
		q("_other"):           1,
		d("_sum", "select"):   0.004,
		d("_sum", "insert"):   0.0075,
		d("_sum", "delete"):   0.002,
		d("_sum", "_other"):   0.001,
		d("_count", "select"): 2,
		key("server_timing_malformed_total", "endpoint", "t_sth_contact"): 2,
		reqKey("t_sth_", "POST", "t_sth_contact", 200):                    4,
	} {
		if got[name] != want {
			t.Errorf("%s moved by %v, want %v (all: %v)", name, got[name], want, got)
		}
	}

	// Without strip the header reaches the client untouched.
	keep := routeMetrics(t, `{"name":"t_sth_keep","server_timing":{"metrics":[{"name":"db","queries":"t_sth_db_queries_total"}]}}`)
	r, repl := caddyRequestWithRepl("GET", "/")
	w := httptest.NewRecorder()
	_ = chain((&upstreamSim{timing: []string{"db;desc=select"}}).handler(repl), keep).ServeHTTP(w, r)
	if v := w.Result().Header.Get("Server-Timing"); v != "db;desc=select" {
		t.Errorf("Server-Timing without strip: %q", v)
	}
	// The innermost server_timing decides: keep's rules, not site's strip.
	r, repl = caddyRequestWithRepl("GET", "/")
	w = httptest.NewRecorder()
	_ = chain((&upstreamSim{timing: []string{"db;desc=select"}}).handler(repl), site, keep).ServeHTTP(w, r)
	if v := w.Result().Header.Get("Server-Timing"); v != "db;desc=select" {
		t.Errorf("innermost server_timing (no strip) must decide: got %q", v)
	}
}

// The innermost route_metrics that sets a namespace owns the request: its
// namespace gets the request, its latency, bytes, in-flight count,
// upstream latency and exemplars; a handler nested in it without a
// namespace inherits it (not the outermost handler's).
func TestInnermostNamespaceOwnsTheRequest(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_inh_","request_id":"X-Request-ID"}`)
	mid := routeMetrics(t, `{"name":"t_nsi_mid","namespace":"t_own_"}`)
	leaf := routeMetrics(t, `{"name":"t_nsi_leaf"}`)
	for _, c := range []struct {
		name     string
		mws      []caddyhttp.MiddlewareHandler
		endpoint string
	}{
		{"inner namespace", []caddyhttp.MiddlewareHandler{site, mid}, "t_nsi_mid"},
		{"inherited from the inner namespace", []caddyhttp.MiddlewareHandler{site, mid, leaf}, "t_nsi_leaf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := scrapeShared(t, formatText)
			r, repl := caddyRequestWithRepl("POST", "/")
			r.Header.Set("X-Request-ID", "ns-"+c.endpoint)
			var inflight exposition
			u := &upstreamSim{hostport: "10.0.0.1:80", latency: 7 * time.Millisecond}
			final := func(w http.ResponseWriter, r *http.Request) error {
				inflight, _ = scrapeShared(t, formatText)
				return u.handler(repl)(w, r)
			}
			if err := chain(final, c.mws...).ServeHTTP(httptest.NewRecorder(), r); err != nil {
				t.Fatal(err)
			}
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			up := key("t_own_http_upstream_duration_seconds_count", "endpoint", c.endpoint, "upstream", "10.0.0.1:80")
			for k, want := range map[string]float64{
				reqKey("t_own_", "POST", c.endpoint, 200):      1,
				durCountKey("t_own_", "POST", c.endpoint, 200): 1,
				bytesKey("t_own_", "POST", c.endpoint, 200):    2,
				up: 1,
			} {
				if got[k] != want {
					t.Errorf("%s moved by %v, want %v", k, got[k], want)
				}
			}
			for k, v := range got {
				if strings.HasPrefix(k, "t_inh_") {
					t.Errorf("the outer namespace recorded part of the request: %s +%v", k, v)
				}
			}
			if v := inflight[inflightKey("t_own_", c.endpoint)]; v != 1 {
				t.Errorf("in flight under the inner namespace during the request: %v, want 1", v)
			}
			if v := inflight[inflightKey("t_inh_", "other")]; v != 0 {
				t.Errorf("in flight under the outer namespace during the request: %v, want 0", v)
			}
			_, ex, _ := scrapeOM(t)
			upBucket := key("t_own_http_upstream_duration_seconds_bucket", "endpoint", c.endpoint, "upstream", "10.0.0.1:80", "le", "0.01")
			if !strings.Contains(ex[upBucket], `request_id="ns-`+c.endpoint+`"`) {
				t.Errorf("upstream bucket exemplar %q, want the request's ID", ex[upBucket])
			}
		})
	}
}
