package routemetrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// testHandler is a stateless handler the test binary adds to Caddy.
type testHandler interface {
	caddy.Module
	caddyhttp.MiddlewareHandler
}

// registerTestDirective registers h as a module and as a Caddyfile
// directive without arguments, for test configurations.
func registerTestDirective(directive string, h testHandler) {
	caddy.RegisterModule(h)
	httpcaddyfile.RegisterHandlerDirective(directive, func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return h, nil
	})
}

// exposition is one scrape parsed into sample key -> value, where the key
// is the sample exactly as written: name{label="value",...}.
type exposition map[string]float64

// scrapeShared reads the process-wide registry the way metrics_endpoint
// does (same cursor, same Go runtime refresh) and parses it.
func scrapeShared(t testing.TB, f expoFormat) (exposition, string) {
	t.Helper()
	reg, err := sharedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	refreshGoRuntime()
	body := string(readExposition(t, reg, f, true))
	return parseExposition(t, body), body
}

// readExposition reads a whole exposition of reg through libmetrics'
// cursor, in 4 KiB reads.
func readExposition(t testing.TB, reg *lmRegistry, f expoFormat, process bool) []byte {
	t.Helper()
	x, err := reg.expoBegin(f, process)
	if err != nil {
		t.Fatal(err)
	}
	defer x.end()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := x.read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out.Bytes()
		}
		out.Write(buf[:n])
	}
}

func parseExposition(t testing.TB, body string) exposition {
	t.Helper()
	e := exposition{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("malformed value in %q: %v", line, err)
		}
		e[line[:i]] = v
	}
	return e
}

// key builds a sample key with labels in the order given.
func key(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// reqKey is the requests_total sample of (method, endpoint, status).
func reqKey(prefix, method, endpoint string, status int) string {
	return key(prefix+"http_requests_total", "method", method, "endpoint", endpoint, "status", strconv.Itoa(status))
}

func durCountKey(prefix, method, endpoint string, status int) string {
	return key(prefix+"http_request_duration_seconds_count", "method", method, "endpoint", endpoint, "status", strconv.Itoa(status))
}

func bytesKey(prefix, method, endpoint string, status int) string {
	return key(prefix+"http_response_size_bytes_total", "method", method, "endpoint", endpoint, "status", strconv.Itoa(status))
}

func inflightKey(prefix, endpoint string) string {
	return key(prefix+"http_requests_in_progress", "endpoint", endpoint)
}

func abortedKey(prefix, endpoint string) string {
	return key(prefix+"http_responses_aborted_total", "endpoint", endpoint)
}

// requestsMoved sums the moves of every <prefix>http_requests_total series
// in a delta: how many requests were counted, wherever.
func requestsMoved(moves map[string]float64, prefix string) float64 {
	var total float64
	for k, v := range moves {
		if strings.HasPrefix(k, prefix+"http_requests_total{") {
			total += v
		}
	}
	return total
}

// delta returns after[k] - before[k] for every key that moved.
func delta(before, after exposition) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// provision loads a handler from its JSON form through Caddy's module
// loader (decode, Provision, Validate) and cleans it up with the test.
func provision[T any](t testing.TB, id, js string) T {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	mod, err := ctx.LoadModuleByID(id, json.RawMessage(js))
	if err != nil {
		cancel()
		t.Fatalf("loading %s %s: %v", id, js, err)
	}
	t.Cleanup(cancel)
	return mod.(T)
}

func routeMetrics(t testing.TB, js string) *RouteMetrics {
	return provision[*RouteMetrics](t, "http.handlers.route_metrics", js)
}

// caddyRequest builds a request carrying Caddy's per-request vars table,
// as every request inside a Caddy server does.
func caddyRequest(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{})
	return r.WithContext(ctx)
}

// leaveUpstream leaves on r what reverse_proxy leaves for a request it
// proxied: its vars entry (set when it prepares the request, see
// proxyPreparedVar) and, after the round trip, the upstream's address and
// latency in the replacer.
func leaveUpstream(r *http.Request, repl *caddy.Replacer, hostport string, latency time.Duration) {
	caddyhttp.SetVar(r.Context(), proxyPreparedVar, reverseproxy.ProxyProtocolInfo{})
	repl.Set(replUpstreamHostport, hostport)
	repl.Set(replUpstreamLatency, latency)
}

// loadServers loads a configuration as Caddy does (caddy.Load: provision,
// start) and returns its HTTP servers; it is stopped with tb. A test
// calls a server's ServeHTTP, the method net/http calls per request.
func loadServers(tb testing.TB, cfgJSON []byte) map[string]*caddyhttp.Server {
	tb.Helper()
	if err := caddy.Load(cfgJSON, true); err != nil {
		tb.Fatalf("loading the configuration: %v", err)
	}
	tb.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		tb.Fatal(err)
	}
	return app.(*caddyhttp.App).Servers
}

// loadServer is loadServers for a configuration of one server.
func loadServer(tb testing.TB, cfgJSON []byte) *caddyhttp.Server {
	tb.Helper()
	servers := loadServers(tb, cfgJSON)
	if len(servers) != 1 {
		tb.Fatalf("%d servers, want 1", len(servers))
	}
	for _, s := range servers {
		return s
	}
	return nil
}

// concurrently runs do(i, j) for j in [0, each) on each of workers
// goroutines (i is the goroutine's index) and waits for them all.
func concurrently(workers, each int, do func(i, j int)) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				do(i, j)
			}
		}()
	}
	wg.Wait()
}

// chain nests middleware handlers around final, outermost first.
func chain(final caddyhttp.HandlerFunc, mws ...caddyhttp.MiddlewareHandler) caddyhttp.Handler {
	var next caddyhttp.Handler = final
	for i := len(mws) - 1; i >= 0; i-- {
		mw, n := mws[i], next
		next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return mw.ServeHTTP(w, r, n)
		})
	}
	return next
}

// respond is a final handler that writes status and body.
func respond(status int, body string) caddyhttp.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(status)
		_, err := w.Write([]byte(body))
		return err
	}
}

// decodeStrict decodes a handler's JSON form, refusing unknown fields the
// way Caddy's config loader does.
func decodeStrict(js string, v any) error {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
