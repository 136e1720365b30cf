package routemetrics

// Scrape cost and memory per series, our exposition against client_golang
// holding the same series (bench/run.sh runs these and writes
// bench/RESULTS.md):
//
//	BenchmarkScrape/series=N/impl=lm    lm_expo_read loop into a 32 KiB
//	                                    buffer, as metrics_endpoint does
//	BenchmarkScrape/series=N/impl=prom  Registry.Gather + expfmt text
//	                                    encoder, as promhttp does
//	BenchmarkSeriesMemory/...           RSS and Go heap growth per series;
//	                                    meant to run alone in a fresh
//	                                    process per size (-benchtime=1x)
//
// Both sides write the Prometheus text format to a discarding writer and
// leave out process and Go runtime metrics, so only the series are
// rendered. A series is one label set of one family, as Prometheus counts
// them: each (endpoint, method, status) tuple gives three (requests
// counter, latency histogram with libmetrics' 14 default buckets, bytes
// counter) and each endpoint one in-flight gauge.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// scrapeSizes are the series counts bench/run.sh reports.
var scrapeSizes = []int{1000, 10000, 100000}

// Per endpoint: 5 methods x 10 statuses = 50 tuples = 150 series + 1 gauge.
// Endpoints are spread over namespaces (metric prefixes) of at most 150
// endpoints so that no family reaches lm_http's default cap of 10000
// series; the client_golang side uses the same prefixes.
var (
	seriesMethods  = []string{"GET", "POST", "PUT", "DELETE", "HEAD"}
	seriesStatuses = []int{200, 201, 204, 301, 302, 304, 400, 404, 500, 503}
)

const routesPerNamespace = 150

type seriesTuple struct {
	ns, route       int
	method          string
	status          int
	d               time.Duration
	bytes           uint64
	firstOfEndpoint bool
}

// seriesPlan lists the tuples whose series add up to at least n and
// returns the exact series count.
func seriesPlan(n int) ([]seriesTuple, int) {
	var out []seriesTuple
	count := 0
	for r := 0; count < n; r++ {
		count++ // the endpoint's in-flight gauge
		first := true
		for _, m := range seriesMethods {
			for _, s := range seriesStatuses {
				if count >= n {
					break
				}
				i := len(out)
				out = append(out, seriesTuple{
					ns: r / routesPerNamespace, route: r, method: m, status: s,
					d:     time.Duration(i%997) * 37 * time.Microsecond,
					bytes: uint64(i%4096) + 1, firstOfEndpoint: first,
				})
				first = false
				count += 3
			}
		}
	}
	return out, count
}

func nsPrefix(ns int) string    { return "ns" + strconv.Itoa(ns) + "_" }
func endpointName(r int) string { return "endpoint_" + strconv.Itoa(r) }

func plannedNamespaces(plan []seriesTuple) int {
	if len(plan) == 0 {
		return 0
	}
	return plan[len(plan)-1].ns + 1
}

// buildLM creates the planned series in a fresh registry, each observed
// once (that is what creates a (method, status) series in lm_http).
func buildLM(plan []seriesTuple) (*lmRegistry, error) {
	reg, err := newLMRegistry()
	if err != nil {
		return nil, err
	}
	hfs := make([]*httpFamilies, plannedNamespaces(plan))
	for i := range hfs {
		if hfs[i], err = reg.registerHTTP(nsPrefix(i), nil, httpShape{}, defaultNative()); err != nil {
			return nil, err
		}
	}
	var rt *route
	for _, t := range plan {
		if t.firstOfEndpoint || rt == nil {
			if rt, err = hfs[t.ns].route(endpointName(t.route)); err != nil {
				return nil, err
			}
		}
		rt.record(methodOf(t.method), t.status, t.d, 0, t.bytes, nil)
	}
	return reg, nil
}

// buildProm creates the same series with client_golang.
func buildProm(plan []seriesTuple) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	fams := make([]*promRecordFixture, plannedNamespaces(plan))
	for i := range fams {
		fams[i] = newPromHTTPFamilies(reg, nsPrefix(i))
	}
	for _, t := range plan {
		f, ep, code := fams[t.ns], endpointName(t.route), strconv.Itoa(t.status)
		if t.firstOfEndpoint {
			f.inflight.WithLabelValues(ep).Add(0)
		}
		f.requests.WithLabelValues(t.method, ep, code).Inc()
		f.duration.WithLabelValues(t.method, ep, code).Observe(t.d.Seconds())
		f.bytes.WithLabelValues(t.method, ep, code).Add(float64(t.bytes))
		f.reqBytes.WithLabelValues(t.method, ep, code).Add(0)
	}
	return reg
}

// lmScrapeTo is metrics_endpoint's loop without the HTTP around it.
func lmScrapeTo(reg *lmRegistry, f expoFormat, buf []byte, w io.Writer) (int64, error) {
	x, err := reg.expoBegin(f, false)
	if err != nil {
		return 0, err
	}
	defer x.end()
	var total int64
	for {
		n, err := x.read(buf)
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return total, err
		}
		total += int64(n)
	}
}

func lmScrape(reg *lmRegistry, f expoFormat) ([]byte, error) {
	var out bytes.Buffer
	_, err := lmScrapeTo(reg, f, make([]byte, expoBufSize), &out)
	return out.Bytes(), err
}

// promScrapeTo is what promhttp.HandlerFor does for a text/plain scrape,
// without the HTTP around it.
func promScrapeTo(reg *prometheus.Registry, w io.Writer) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// countingDiscard counts body bytes so the report can show the exposition
// sizes side by side.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type scrapeFixture struct {
	lm     *lmRegistry
	prom   *prometheus.Registry
	series int
}

var (
	scrapeFixturesMu sync.Mutex
	scrapeFixtures   = map[int]*scrapeFixture{}
)

// scrapeFixtureFor builds both registries once per size and process, so
// -count repetitions time scrapes only.
func scrapeFixtureFor(n int) (*scrapeFixture, error) {
	scrapeFixturesMu.Lock()
	defer scrapeFixturesMu.Unlock()
	if f := scrapeFixtures[n]; f != nil {
		return f, nil
	}
	plan, count := seriesPlan(n)
	lm, err := buildLM(plan)
	if err != nil {
		return nil, err
	}
	f := &scrapeFixture{lm: lm, prom: buildProm(plan), series: count}
	scrapeFixtures[n] = f
	return f, nil
}

func BenchmarkScrape(b *testing.B) {
	for _, n := range scrapeSizes {
		f, err := scrapeFixtureFor(n)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("series=%d/impl=lm", n), func(b *testing.B) {
			buf := make([]byte, expoBufSize) // pooled in the endpoint
			var w countingDiscard
			b.ReportAllocs()
			c0 := processCPU()
			defer reportCPU(b, c0)
			for b.Loop() {
				w.n = 0
				if _, err := lmScrapeTo(f.lm, formatText, buf, &w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(w.n), "body-bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(f.series), "ns/series")
		})
		b.Run(fmt.Sprintf("series=%d/impl=prom", n), func(b *testing.B) {
			var w countingDiscard
			b.ReportAllocs()
			c0 := processCPU()
			defer reportCPU(b, c0)
			for b.Loop() {
				w.n = 0
				if err := promScrapeTo(f.prom, &w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(w.n), "body-bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(f.series), "ns/series")
		})
	}
}

// TestScrapeSameSeries guards the comparison itself: both sides must
// expose the same sample lines for the same plan, or the scrape figures
// compare different work.
func TestScrapeSameSeries(t *testing.T) {
	plan, count := seriesPlan(1000)
	lm, err := buildLM(plan)
	if err != nil {
		t.Fatal(err)
	}
	lmBody, err := lmScrape(lm, formatText)
	if err != nil {
		t.Fatal(err)
	}
	var promBody bytes.Buffer
	if err := promScrapeTo(buildProm(plan), &promBody); err != nil {
		t.Fatal(err)
	}
	samples := func(body []byte) int {
		n := 0
		for line := range strings.SplitSeq(string(body), "\n") {
			// Planned families only: libmetrics adds self-metrics.
			if strings.HasPrefix(line, "ns0_") {
				n++
			}
		}
		return n
	}
	got, want := samples(lmBody), samples(promBody.Bytes())
	if got != want {
		t.Fatalf("plan of %d series: libmetrics exposes %d sample lines, client_golang %d", count, got, want)
	}
	if want < count {
		t.Fatalf("plan of %d series produced only %d sample lines", count, want)
	}
}

// rssBytes reads VmRSS: the kernel's view counts C and Go memory alike.
func rssBytes(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			kb, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// settle returns freed Go memory to the OS so RSS shows what is live.
func settle() (heapInUse uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

type memResult struct {
	series                      int
	rssPerSeries, heapPerSeries float64
}

var (
	memResultsMu sync.Mutex
	memResults   = map[string]memResult{}
)

// BenchmarkSeriesMemory builds one registry per sub-benchmark. Run each
// size and implementation in its own process (bench/run.sh does), or one
// registry's memory blurs the next one's. The measurement happens once per
// process; later b.N rounds report the same figures.
func BenchmarkSeriesMemory(b *testing.B) {
	for _, n := range scrapeSizes {
		for _, impl := range []string{"lm", "prom"} {
			key := fmt.Sprintf("series=%d/impl=%s", n, impl)
			b.Run(key, func(b *testing.B) {
				memResultsMu.Lock()
				defer memResultsMu.Unlock()
				r, ok := memResults[key]
				if !ok {
					r = measureSeriesMemory(b, n, impl)
					memResults[key] = r
				}
				for b.Loop() {
				}
				b.ReportMetric(float64(r.series), "series")
				b.ReportMetric(r.rssPerSeries, "rss-B/series")
				b.ReportMetric(r.heapPerSeries, "goheap-B/series")
			})
		}
	}
}

func measureSeriesMemory(b *testing.B, n int, impl string) memResult {
	plan, count := seriesPlan(n)
	heap0 := settle()
	rss0 := rssBytes(b)
	var keep any
	if impl == "lm" {
		reg, err := buildLM(plan)
		if err != nil {
			b.Fatal(err)
		}
		// One scrape, so memory the exposition keeps is counted too.
		if _, err := lmScrapeTo(reg, formatText, make([]byte, expoBufSize), io.Discard); err != nil {
			b.Fatal(err)
		}
		keep = reg
	} else {
		reg := buildProm(plan)
		if err := promScrapeTo(reg, io.Discard); err != nil {
			b.Fatal(err)
		}
		keep = reg
	}
	heap1 := settle()
	rss1 := rssBytes(b)
	runtime.KeepAlive(keep)
	return memResult{
		series:        count,
		rssPerSeries:  float64(rss1-rss0) / float64(count),
		heapPerSeries: (float64(heap1) - float64(heap0)) / float64(count),
	}
}
