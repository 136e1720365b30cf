package routemetrics

// What route templates cost in series and scrape size, for each choice of
// the cardinality levers (shape.go): a 50-template app (a REST API of 10
// resources, FastAPI-shaped) under the same mixed traffic through the real
// handler, in four namespaces:
//
//	codes           status codes, latency by method, endpoint and status
//	classes         status_classes
//	nostatus        latency_labels method endpoint
//	classes+nostatus both (the instrumentator's default shape)
//
// Reported per namespace: series of http_requests_total (each HTTP family
// has as many, the histogram too unless it drops status; the 10,000 cap is
// per family), label sets of all four families, sample lines, the text
// exposition's bytes plain and gzipped (HELP/TYPE lines included), and how
// many lookups folded into "_overflow" at the cap.
// Run: go test -run '^$' -bench TemplateCardinality -benchtime 1x

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// cardinalityApp is 10 resources x 5 templates.
func cardinalityApp() []string {
	var t []string
	for _, r := range []string{"users", "orders", "items", "carts", "payments", "invoices", "shipments", "reviews", "coupons", "stores"} {
		t = append(t, "/v1/"+r, "/v1/"+r+"/{id}", "/v1/"+r+"/{id}/events", "/v1/"+r+"/{id}/notes/{note_id:int}", "/v1/"+r+"/search")
	}
	return t
}

// mixedStatus draws a status the way API traffic spreads: mostly 200,
// then the usual 2xx/3xx/4xx/5xx.
func mixedStatus(rng *rand.Rand) int {
	table := []struct {
		status, weight int
	}{{200, 700}, {201, 60}, {204, 40}, {301, 5}, {304, 20}, {400, 25}, {401, 30}, {403, 10},
		{404, 50}, {405, 5}, {409, 5}, {422, 20}, {429, 5}, {500, 10}, {502, 5}, {503, 5}, {504, 5}}
	total := 0
	for _, e := range table {
		total += e.weight
	}
	n := rng.IntN(total)
	for _, e := range table {
		if n < e.weight {
			return e.status
		}
		n -= e.weight
	}
	return 200
}

var cardinalityMethods = []string{"GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// concretePath is a path template t matches.
func concretePath(t string, rng *rand.Rand) string {
	t = strings.ReplaceAll(t, "{id}", fmt.Sprintf("c%d", rng.IntN(100000)))
	return strings.ReplaceAll(t, "{note_id:int}", fmt.Sprintf("%d", rng.IntN(1000)))
}

type cardinality struct {
	perFamily, labelSets, lines, bytes, gzipped int
	folded                                      float64
}

func measureNamespace(body, prefix string) cardinality {
	var c cardinality
	var ns bytes.Buffer
	for _, line := range strings.SplitAfter(body, "\n") {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if strings.HasPrefix(line, "libmetrics_series_folded_total{family=\""+prefix) {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			c.folded += v
		}
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		ns.WriteString(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		c.lines++
		if strings.HasPrefix(line, prefix+"http_requests_total{") {
			c.perFamily++ // the counters' and (with status) the histogram's series
		}
		// one label set per series: its _count line for histograms
		if !strings.Contains(line, "_bucket{") && !strings.Contains(line, "_sum{") {
			c.labelSets++
		}
	}
	c.bytes = ns.Len()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(ns.Bytes())
	zw.Close()
	c.gzipped = z.Len()
	return c
}

func BenchmarkTemplateCardinality(b *testing.B) {
	templates := cardinalityApp()
	quoted := `"` + strings.Join(templates, `","`) + `"`
	shapes := []struct{ name, prefix, extra string }{
		{"codes", "card_codes_", ``},
		{"classes", "card_classes_", `,"status_classes":true`},
		{"nostatus", "card_nostatus_", `,"latency_labels":["method","endpoint"]`},
		{"classes+nostatus", "card_both_", `,"status_classes":true,"latency_labels":["method","endpoint"]`},
	}
	const requests = 200000
	results := map[string]cardinality{}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			h := routeMetrics(b, fmt.Sprintf(`{"name":"api","namespace":%q,"templates":[%s]%s}`, s.prefix, quoted, s.extra))
			rng := rand.New(rand.NewPCG(1, 2)) // the same traffic in every namespace
			status := 200
			final := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(status)
				return nil
			})
			next := chain(final, h)
			for range b.N {
				for i := 0; i < requests; i++ {
					path := concretePath(templates[rng.IntN(len(templates))], rng)
					if rng.IntN(100) < 5 {
						path = fmt.Sprintf("/scan/%d", rng.IntN(1e6)) // no template: the route's name
					}
					method := cardinalityMethods[rng.IntN(len(cardinalityMethods))]
					status = mixedStatus(rng)
					next.ServeHTTP(httptest.NewRecorder(), caddyRequest(method, path))
				}
			}
			_, body := scrapeShared(b, formatText)
			c := measureNamespace(body, s.prefix)
			results[s.name] = c
			b.ReportMetric(float64(c.perFamily), "series/family")
			b.ReportMetric(float64(c.labelSets), "label-sets")
			b.ReportMetric(float64(c.lines), "lines")
			b.ReportMetric(float64(c.bytes), "bytes")
			b.ReportMetric(float64(c.gzipped), "gzip-bytes")
			b.ReportMetric(c.folded, "folded")
		})
	}
	if len(results) == len(shapes) {
		fmt.Printf("\n50 templates, %d requests of mixed traffic (8 methods, 17 statuses, 5%% unknown paths):\n", requests)
		fmt.Printf("  %-17s %13s %10s %8s %11s %10s %8s\n", "shape", "series/family", "label sets", "lines", "bytes", "gzip", "folded")
		for _, s := range shapes {
			c := results[s.name]
			fmt.Printf("  %-17s %13d %10d %8d %11d %10d %8.0f\n", s.name, c.perFamily, c.labelSets, c.lines, c.bytes, c.gzipped, c.folded)
		}
		fmt.Println("reproduce: bench/templates.sh (or, in caddymodule/ with tests/go.sh's environment:",
			"go test -run '^$' -bench TemplateCardinality -benchtime 1x)")
	}
}
