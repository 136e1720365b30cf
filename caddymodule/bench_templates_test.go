package routemetrics

// What route templates cost per request on the Go side:
//
//	plain           tracker.enter + finish, a route_metrics without
//	                templates (what such routes still pay: nothing more)
//	templates=N     the same with N templates: the path matched when the
//	                request reaches the handler (one cgo crossing into
//	                lm_matcher_match), recorded under the template's route
//	match/N         that crossing alone (templateRoute)
//
// Paths cycle through hits on literal and parameterised templates and
// misses. The C matcher alone is bench/lm_match_bench.c.
// Run: go test -run '^$' -bench Templates -benchmem

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func BenchmarkTemplates(b *testing.B) {
	plain := routeMetrics(b, `{"name":"b_tpl_plain","namespace":"b_ex_"}`)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			t := &tracker{http: plain.http, start: start}
			t.enter(plain.route)
			t.addHandler(plain)
			t.finish("GET", 200, time.Millisecond)
		}
	})
	for _, n := range []int{10, 50, 500} {
		var tpl []string
		for i := 0; len(tpl) < n; i++ {
			tpl = append(tpl, fmt.Sprintf("/bt%d/r%d", n, i), fmt.Sprintf("/bt%d/r%d/{id}", n, i),
				fmt.Sprintf("/bt%d/r%d/{id}/items/{item_id:int}", n, i))
		}
		tpl = tpl[:n]
		js := fmt.Sprintf(`{"name":"b_tpl_%d","namespace":"b_ex_","templates":["%s"]}`, n, strings.Join(tpl, `","`))
		h := routeMetrics(b, js)
		var urls []*url.URL
		for i := 0; i < 64; i++ {
			r := i % (n / 3)
			p := []string{
				fmt.Sprintf("/bt%d/r%d", n, r),
				fmt.Sprintf("/bt%d/r%d/%d", n, r, i*7919),
				fmt.Sprintf("/bt%d/r%d/c%d/items/%d", n, r, i, i),
				fmt.Sprintf("/bt%d/nothing/%d", n, i),
			}[i%4]
			urls = append(urls, &url.URL{Path: p})
		}
		b.Run(fmt.Sprintf("templates=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				t := &tracker{http: h.http, start: start}
				t.enter(t.matchTemplates(h, t.http, h.route, urls[i%len(urls)]))
				t.addHandler(h)
				t.finish("GET", 200, time.Millisecond)
			}
		})
		b.Run(fmt.Sprintf("match/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				h.templateRoute(h.http, urls[i%len(urls)].Path)
			}
		})
	}
}
