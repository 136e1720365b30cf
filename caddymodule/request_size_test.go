package routemetrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func reqSizeKey(prefix, method, endpoint string, status int) string {
	return strings.Replace(bytesKey(prefix, method, endpoint, status), "http_response_size_bytes_total", "http_request_size_bytes_total", 1)
}

// caddyRequestBody is caddyRequest with a body; length -1 makes it a body
// of unknown length, as a chunked upload is.
func caddyRequestBody(method, body string, length int64) *http.Request {
	r := httptest.NewRequest(method, "/upload", io.NopCloser(strings.NewReader(body)))
	r.ContentLength = length
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
}

// http_request_size_bytes_total counts the body bytes the handler chain
// actually read: all of a body read to the end (known length or chunked),
// the part read of a body read in part, nothing of a body nobody reads.
func TestRequestSizeCountsBytesRead(t *testing.T) {
	site := routeMetrics(t, `{"name":"t_rqs_site"}`)
	inner := routeMetrics(t, `{"name":"t_rqs"}`)
	readAll := func(w http.ResponseWriter, r *http.Request) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		w.WriteHeader(201)
		_, err = w.Write(b[:min(len(b), 3)])
		return err
	}
	readSome := func(n int) caddyhttp.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.ReadFull(r.Body, make([]byte, n))
			w.WriteHeader(202)
			return err
		}
	}
	body := strings.Repeat("0123456789", 1000) // 10,000 bytes
	for _, c := range []struct {
		name   string
		final  caddyhttp.HandlerFunc
		req    *http.Request
		status int
		want   float64
	}{
		{"Content-Length, read to the end", readAll, caddyRequestBody("POST", body, int64(len(body))), 201, 10000},
		{"chunked, read to the end", readAll, caddyRequestBody("PUT", body, -1), 201, 10000},
		{"read in part", readSome(1234), caddyRequestBody("PATCH", body, int64(len(body))), 202, 1234},
		{"nobody reads it", respond(200, "ok"), caddyRequestBody("DELETE", body, int64(len(body))), 200, 0},
		{"no body", readAll, caddyRequest("GET", "/"), 201, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			noBody := c.req.Body == http.NoBody
			var sawNoBody bool
			final := func(w http.ResponseWriter, r *http.Request) error {
				sawNoBody = r.Body == http.NoBody
				return c.final(w, r)
			}
			before, _ := scrapeShared(t, formatText)
			if err := chain(final, site, inner).ServeHTTP(httptest.NewRecorder(), c.req); err != nil {
				t.Fatal(err)
			}
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			k := reqSizeKey("", c.req.Method, "t_rqs", c.status)
			if got[k] != c.want {
				t.Errorf("%s moved by %v, want %v (moves %v)", k, got[k], c.want, got)
			}
			if _, ok := after[k]; !ok {
				t.Errorf("no %s series after the request", k)
			}
			if got[reqKey("", c.req.Method, "t_rqs", c.status)] != 1 {
				t.Errorf("request not counted once: %v", got)
			}
			if noBody && !sawNoBody {
				t.Error("a request without a body must keep http.NoBody")
			}
		})
	}
}

// The extended record path (request_id) carries the request size too.
func TestRequestSizeOnTheExtendedPath(t *testing.T) {
	site := routeMetrics(t, `{"name":"t_rqs_ex","request_id":"X-Request-ID"}`)
	before, _ := scrapeShared(t, formatText)
	r := caddyRequestBody("POST", strings.Repeat("x", 777), -1)
	final := func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.Copy(io.Discard, r.Body)
		return err
	}
	if err := chain(final, site).ServeHTTP(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	after, _ := scrapeShared(t, formatText)
	if d := delta(before, after)[reqSizeKey("", "POST", "t_rqs_ex", 200)]; d != 777 {
		t.Errorf("request size %v, want 777", d)
	}
}
