package routemetrics

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// expectMoves checks that each sample moved by exactly its wanted amount
// between two scrapes.
func expectMoves(t *testing.T, before, after exposition, want map[string]float64) {
	t.Helper()
	got := delta(before, after)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s moved by %v, want %v (all: %v)", name, got[name], w, got)
		}
	}
}

// serveThrough runs one request through handlers and returns the recorder.
func serveThrough(t *testing.T, final caddyhttp.HandlerFunc, method, target string, mws ...caddyhttp.MiddlewareHandler) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := chain(final, mws...).ServeHTTP(w, caddyRequest(method, target)); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestTemplatesLabelRequestsByMatchedTemplate(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_tpl_","name":"api","templates":[
		"/v1/customers/{customer_id}","/v1/customers/me","/v1/files/{file_path:path}","/v1/items/{id:int}"]}`)
	before, _ := scrapeShared(t, formatText)
	for _, p := range []string{
		"/v1/customers/42", "/v1/customers/me", "/v1/customers/x%2Fy", "/v1/files/a/b/c.txt",
		"/v1/files/", "/v1/items/7", "/v1/items/seven", "/v1/customers/", "/nowhere",
	} {
		serveThrough(t, respond(200, "ok"), "GET", p, site)
	}
	after, _ := scrapeShared(t, formatText)
	expectMoves(t, before, after, map[string]float64{
		reqKey("t_tpl_", "GET", "/v1/customers/{customer_id}", 200): 1,
		reqKey("t_tpl_", "GET", "/v1/customers/me", 200):            1,
		reqKey("t_tpl_", "GET", "/v1/files/{file_path:path}", 200):  2,
		reqKey("t_tpl_", "GET", "/v1/items/{id:int}", 200):          1,
		// x%2Fy decodes to two segments (as FastAPI routes it), "seven" is
		// no int, an empty segment no {customer_id}: the route's name.
		reqKey("t_tpl_", "GET", "api", 200): 4,
	})
}

// inflightDuring returns a final handler that reads the in-flight gauges
// of endpoints while the request is being handled.
func inflightDuring(t *testing.T, prefix string, seen map[string]float64, endpoints ...string) caddyhttp.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		x, _ := scrapeShared(t, formatText)
		for _, e := range endpoints {
			seen[e] = x[inflightKey(prefix, e)]
		}
		w.WriteHeader(204)
		return nil
	}
}

func TestTemplatesInflightFollowsTemplate(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_tpl_","name":"in_api","templates":["/in/users/{id}"]}`)
	seen := map[string]float64{}
	serveThrough(t, inflightDuring(t, "t_tpl_", seen, "/in/users/{id}", "in_api"), "GET", "/in/users/1", site)
	if seen["/in/users/{id}"] != 1 || seen["in_api"] != 0 {
		t.Errorf("in-flight during the request: %v, want the template at 1", seen)
	}
	after, _ := scrapeShared(t, formatText)
	if after[inflightKey("t_tpl_", "/in/users/{id}")] != 0 {
		t.Error("in-flight not back to 0")
	}
}

// rewriteTo mutates the request's path in place, as Caddy's uri
// strip_prefix and rewrite handlers do.
type rewriteTo struct{ strip string }

func (rw rewriteTo) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.URL.Path = strings.TrimPrefix(r.URL.Path, rw.strip)
	return next.ServeHTTP(w, r)
}

func TestTemplatesMatchThePathTheUpstreamReceives(t *testing.T) {
	// route_metrics before `uri strip_prefix /api`: matched on entry on
	// /api/users/1 (no template), recorded under the final path's template.
	site := routeMetrics(t, `{"namespace":"t_tpl_","name":"rw_api","templates":["/rw/users/{id}"],
		"server_timing":{"metrics":[{"name":"db","queries":"t_tpl_db_queries_total"}]}}`)
	seen := map[string]float64{}
	final := func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Server-Timing", "db;desc=select;dur=1")
		return inflightDuring(t, "t_tpl_", seen, "/rw/users/{id}", "rw_api")(w, r)
	}
	before, _ := scrapeShared(t, formatText)
	serveThrough(t, final, "GET", "/api/rw/users/1", site, rewriteTo{"/api"})
	serveThrough(t, respond(200, ""), "GET", "/api/rw/nothing", site, rewriteTo{"/api"})
	after, _ := scrapeShared(t, formatText)
	expectMoves(t, before, after, map[string]float64{
		reqKey("t_tpl_", "GET", "/rw/users/{id}", 204):                                     1,
		reqKey("t_tpl_", "GET", "rw_api", 200):                                             1,
		key("t_tpl_db_queries_total", "endpoint", "/rw/users/{id}", "operation", "select"): 1,
	})
	// The documented limitation: in flight, the request was where the
	// entry match put it.
	if seen["rw_api"] != 1 || seen["/rw/users/{id}"] != 0 {
		t.Errorf("in-flight during a rewritten request: %v, want the entry match (rw_api) at 1", seen)
	}
	if after[inflightKey("t_tpl_", "rw_api")] != 0 || after[inflightKey("t_tpl_", "/rw/users/{id}")] != 0 {
		t.Error("in-flight not back to 0")
	}
}

func TestTemplatesInnermostHandlerDecides(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_tpl_","name":"nest","templates":["/a/{x}"]}`)
	inner := routeMetrics(t, `{"name":"nest_inner"}`)
	innerTpl := routeMetrics(t, `{"name":"nest_inner2","templates":["/a/{y:int}"]}`)
	before, _ := scrapeShared(t, formatText)
	serveThrough(t, respond(200, ""), "GET", "/a/1", site)
	serveThrough(t, respond(200, ""), "GET", "/a/1", site, inner)
	serveThrough(t, respond(200, ""), "GET", "/a/1", site, innerTpl)
	serveThrough(t, respond(200, ""), "GET", "/a/b", site, innerTpl)
	after, _ := scrapeShared(t, formatText)
	expectMoves(t, before, after, map[string]float64{
		reqKey("t_tpl_", "GET", "/a/{x}", 200):      1,
		reqKey("t_tpl_", "GET", "nest_inner", 200):  1,
		reqKey("t_tpl_", "GET", "/a/{y:int}", 200):  1,
		reqKey("t_tpl_", "GET", "nest_inner2", 200): 1,
	})
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const specJSON = `{
  "openapi": "3.1.0",
  "info": {"title": "x", "version": "1"},
  "paths": {
    "/v1/customers/{customer_id}": {"get": {}},
    "/v1/customers/me": {"get": {}},
    "/v1/files/{file_path}": {"get": {"parameters": [{"name": "file_path"}]}}
  }
}`

func TestOpenAPISpecJSONAndYAML(t *testing.T) {
	srcs, err := templateSources(writeFile(t, "openapi.json", specJSON), []string{"/v1/files/{file_path:path}"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range srcs {
		got = append(got, s.path+" @"+filepath.Base(s.where))
	}
	want := []string{"/v1/customers/{customer_id} @openapi.json:5:5", "/v1/customers/me @openapi.json:6:5",
		"/v1/files/{file_path:path} @templates[0]"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}

	yml := "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a/{x}:\n    get: {}\n  /b:\n    post: {}\n"
	srcs, err = templateSources(writeFile(t, "openapi.yaml", yml), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].path != "/a/{x}" || !strings.HasSuffix(srcs[0].where, "openapi.yaml:4:3") ||
		srcs[1].path != "/b" || !strings.HasSuffix(srcs[1].where, "openapi.yaml:6:3") {
		t.Errorf("yaml: %+v", srcs)
	}
}

func TestOpenAPISpecErrors(t *testing.T) {
	many := `{"openapi":"3.0.0","paths":{`
	for i := 0; i < maxTemplates+1; i++ {
		if i > 0 {
			many += ","
		}
		many += `"/r` + strings.Repeat("x", i%7) + "/" + strconv.Itoa(i) + `":{}`
	}
	many += `}}`
	cases := []struct{ name, text, want string }{
		{"bad.json", "{\n  \"openapi\": \"3.1.0\",\n  \"paths\": {\n    \"/a\": {},,\n  }\n}", "bad.json:4:14: invalid character ','"},
		{"type.json", `{"openapi":"3.1.0","paths":[]}`, `type.json:1:28: "paths" must be an object`},
		{"swagger.json", `{"swagger":"2.0","paths":{"/a":{}}}`, "a Swagger 2.0 document; only OpenAPI 3.x"},
		{"noversion.json", `{"paths":{"/a":{}}}`, `no "openapi" version field`},
		{"empty.json", `{"openapi":"3.0.0","paths":{}}`, "the document has no paths"},
		{"bad.yaml", "openapi: 3.0.0\npaths:\n  /a: {\n", "bad.yaml: yaml: line 3"},
		{"badtpl.json", "{\"openapi\":\"3.0.0\",\n\"paths\":{\"/ok\":{},\n \"/a/{x\":{}}}", `badtpl.json:3:2: template "/a/{x"`},
		{"many.json", many, "501 templates; at most 500 per route_metrics"},
	}
	for _, c := range cases {
		srcs, err := templateSources(writeFile(t, c.name, c.text), nil, nil)
		if err == nil {
			_, err = compileTemplates(srcs, "openapi "+c.name)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := templateSources(filepath.Join(t.TempDir(), "missing.json"), nil, nil); err == nil ||
		!strings.Contains(err.Error(), "missing.json: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTemplatesCaddyfile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), []byte(specJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	d := caddyfile.NewTestDispenser(`route_metrics api {
		openapi ` + filepath.Join(dir, ".", "openapi.json") + `
		template /v1/files/{file_path:path} /health
		template /v1/orders/{id:int}
	}`)
	var got RouteMetrics
	pos, err := got.unmarshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if specFile("/etc/caddy/Caddyfile", "spec/openapi.json") != "/etc/caddy/spec/openapi.json" {
		t.Error("a relative openapi path must be relative to the Caddyfile")
	}
	if got.OpenAPI != filepath.Join(dir, "openapi.json") {
		t.Errorf("openapi resolved to %q", got.OpenAPI)
	}
	if strings.Join(got.Templates, " ") != "/v1/files/{file_path:path} /health /v1/orders/{id:int}" || len(pos.templates) != 3 {
		t.Errorf("templates %q, positions %v", got.Templates, pos.templates)
	}

	for _, c := range []struct{ text, want string }{
		{"route_metrics {\n\ttemplate\n}", "route_metrics: template needs at least one route template, e.g. template /items/{item_id}, at Testfile:2"},
		{"route_metrics {\n\topenapi\n}", "route_metrics: openapi needs one argument"},
		{"route_metrics {\n\topenapi a.json b.json\n}", "route_metrics: openapi needs one argument"},
		{"route_metrics {\n\topenapi a.json\n\topenapi a.json\n}", "openapi given twice"},
		{"route_metrics {\n\ttemplate /ok\n\ttemplate /a/{x:slug}\n}", `Testfile:3: template "/a/{x:slug}": unsupported convertor "slug"`},
		{"route_metrics {\n\ttemplate /a/{x} /a/{y}\n}", `Testfile:2: template "/a/{y}" has the same shape as "/a/{x}"`},
		{"route_metrics {\n\topenapi nothere.json\n}", "nothere.json: no such file or directory, at Testfile:2"},
	} {
		var rm RouteMetrics
		err := rm.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}

func TestTemplatesReloadKeepsCounts(t *testing.T) {
	spec := writeFile(t, "openapi.json", `{"openapi":"3.0.0","paths":{"/keep/{id}":{},"/old":{}}}`)
	js := `{"namespace":"t_tpl_","name":"rl_api","openapi":` + jsonString(spec) + `}`
	first := routeMetrics(t, js)
	serveThrough(t, respond(200, ""), "GET", "/keep/1", first)
	if err := os.WriteFile(spec, []byte(`{"openapi":"3.0.0","paths":{"/keep/{id}":{},"/new":{}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	second := routeMetrics(t, js) // a reload: the same config, the file changed
	serveThrough(t, respond(200, ""), "GET", "/keep/2", second)
	serveThrough(t, respond(200, ""), "GET", "/new", second)
	serveThrough(t, respond(200, ""), "GET", "/old", second)
	x, _ := scrapeShared(t, formatText)
	for name, want := range map[string]float64{
		reqKey("t_tpl_", "GET", "/keep/{id}", 200): 2, // one series across the reload
		reqKey("t_tpl_", "GET", "/new", 200):       1,
		reqKey("t_tpl_", "GET", "rl_api", 200):     1, // /old left the spec
	} {
		if x[name] != want {
			t.Errorf("%s = %v, want %v", name, x[name], want)
		}
	}
	if first.tplRoutes[0] != second.tplRoutes[0] {
		t.Error("an unchanged template got another route handle")
	}
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

func TestTemplatesMatchAllocatesNothing(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_tpl_","name":"alloc_api","templates":["/alloc/{id}","/alloc/me"]}`)
	path := "/alloc/12345"
	if n := testing.AllocsPerRun(1000, func() {
		if site.templateRoute(site.http, path) == nil {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Errorf("templateRoute allocates %v times per call", n)
	}
}
