package routemetrics

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkServeHTTP drives route_metrics the way a Caddy server does: a
// site-level handler (tracker, wrapped writer and body), a nested route
// (retarget), the final header hook and the record call, around a final
// handler that answers 200 "ok". GET has no body; POST has a 1 KiB body
// the handler reads to the end. The request, writer and body are reused,
// so allocs/op is route_metrics' own.
func BenchmarkServeHTTP(b *testing.B) {
	site := routeMetrics(b, `{}`)
	api := routeMetrics(b, `{"name":"b_serve_api"}`)
	payload := bytes.Repeat([]byte("x"), 1024)
	final := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Body != nil {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return err
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		_, err := w.Write([]byte("ok"))
		return err
	})
	h := chain(final, site, api)
	for _, method := range []string{"GET", "POST"} {
		b.Run("method="+method, func(b *testing.B) {
			vars := map[string]any{}
			r, _ := http.NewRequestWithContext(context.WithValue(context.Background(), caddyhttp.VarsCtxKey, vars),
				method, "http://example.com/api", nil)
			body := &rewindBody{}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(vars)
				clear(w.h)
				r.Body = http.NoBody
				if method == "POST" {
					body.Reset(payload)
					r.Body, r.ContentLength = body, int64(len(payload))
				}
				if err := h.ServeHTTP(w, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
