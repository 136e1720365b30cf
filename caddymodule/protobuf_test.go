package routemetrics

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The Accept headers real Prometheus servers send, captured from Debian's
// prometheus 2.42.0 and Prometheus 3.16.0 scraping a stub target (and
// matching their source: scrape/scrape.go's scrapeAcceptHeader and
// scrapeAcceptHeaderWithProtobuf in 2.42; acceptHeader() over
// config.DefaultScrapeProtocols and DefaultProtoFirstScrapeProtocols in
// 3.16, weights from len(ScrapeProtocolsHeaders)+1 = 7 down). 2.42 asks for
// protobuf with --enable-feature=native-histograms; 3.16 ignores that flag
// and asks for it with scrape_native_histograms: true.
const (
	acceptProm242      = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProm242PB    = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProm316      = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3"
	acceptProm316Proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

const pbType = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

func TestNegotiatePrometheusAcceptHeaders(t *testing.T) {
	for accept, want := range map[string]expoFormat{
		acceptProm242:      formatOpenMetrics,
		acceptProm242PB:    formatProtobuf,
		acceptProm316:      formatOpenMetrics,
		acceptProm316Proto: formatProtobuf,
	} {
		if got := negotiateFormat(accept); got != want {
			t.Errorf("Accept %q -> %d, want %d", accept, got, want)
		}
	}
}

func TestNegotiateQValues(t *testing.T) {
	for accept, want := range map[string]expoFormat{
		pbType:                        formatProtobuf,
		pbType + ";q=0.5, text/plain": formatText,
		pbType + ";q=0.5, application/openmetrics-text;q=0.6": formatOpenMetrics,
		pbType + ";q=0.6, application/openmetrics-text;q=0.6": formatProtobuf, // tie: protobuf
		pbType + ";q=0":                   formatText,
		"application/vnd.google.protobuf": formatText, // which message?
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily":                          formatText, // which encoding?
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text":            formatText,
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text":    formatText,
		"Application/Vnd.Google.Protobuf; Proto=io.prometheus.client.MetricFamily; Encoding=\"delimited\"": formatProtobuf,
		"application/vnd.google.protobuf;proto=other.Message;encoding=delimited":                           formatText,
		"*/*;q=0.9, " + pbType + ";q=0.8":                                             formatText,
		"text/plain;q=0.1, " + pbType + ";q=0.2, application/openmetrics-text;q=0.15": formatProtobuf,
	} {
		if got := negotiateFormat(accept); got != want {
			t.Errorf("Accept %q -> %d, want %d", accept, got, want)
		}
	}
}

// decodeFamilies reads a protobuf exposition with client_model (through
// expfmt's delimited decoder, as Prometheus' own tooling does).
func decodeFamilies(t testing.TB, body []byte) []*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("protobuf exposition does not decode after %d families: %v", len(out), err)
		}
		out = append(out, mf)
	}
}

// exposedText is a scrape's body as text 0.0.4 whatever its format, so
// tests can read samples the same way.
func exposedText(t testing.TB, h http.Header, body []byte) string {
	t.Helper()
	if expfmt.ResponseFormat(h).FormatType() != expfmt.TypeProtoDelim {
		return string(body)
	}
	var b strings.Builder
	for _, mf := range decodeFamilies(t, body) {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func familyNames(fams []*dto.MetricFamily) []string {
	var out []string
	for _, f := range fams {
		out = append(out, f.GetName())
	}
	return out
}

func TestEndpointProtobuf(t *testing.T) {
	h := routeMetrics(t, `{"name":"t_pb"}`)
	rt := h.route
	for i := range 20 {
		rt.record(methodGet, 200, time.Duration(i+1)*time.Millisecond, 0, 10, nil)
	}
	m := endpoint(t, `{}`)
	for _, how := range []struct {
		query  string
		accept string
	}{{"?format=protobuf", ""}, {"", acceptProm242PB}, {"", acceptProm316Proto}} {
		w := fetchEndpoint(t, m, "GET", "/metrics"+how.query, "127.0.0.1:1", map[string]string{"Accept": how.accept})
		if ct := w.Header().Get("Content-Type"); ct != "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited" {
			t.Fatalf("%+v: Content-Type %q", how, ct)
		}
		fams := decodeFamilies(t, w.Body.Bytes())
		var dur *dto.Metric
		for _, f := range fams {
			if f.GetName() == "http_request_duration_seconds" {
				if f.GetType() != dto.MetricType_HISTOGRAM {
					t.Errorf("duration family type %v", f.GetType())
				}
				for _, mt := range f.GetMetric() {
					for _, l := range mt.GetLabel() {
						if l.GetName() == "endpoint" && l.GetValue() == "t_pb" {
							dur = mt
						}
					}
				}
			}
		}
		if dur == nil {
			t.Fatalf("%+v: no t_pb series in http_request_duration_seconds; families %v", how, familyNames(fams))
		}
		hg := dur.GetHistogram()
		if hg.GetSampleCount() != 20 || hg.GetSchema() != defaultNativeSchema || hg.GetZeroThreshold() != 0x1p-128 {
			t.Errorf("native histogram: count %d schema %d zero threshold %g", hg.GetSampleCount(), hg.GetSchema(), hg.GetZeroThreshold())
		}
		var n int64
		var c int64
		for _, d := range hg.GetPositiveDelta() {
			c += d
			n += c
		}
		if n != 20 || len(hg.GetBucket()) != len(defaultLatencyBounds()) {
			t.Errorf("native buckets hold %d observations, %d classic buckets", n, len(hg.GetBucket()))
		}
		if sum := hg.GetSampleSum(); sum != 0.21 { // 1 + .. + 20 ms, exact in ns
			t.Errorf("sum %g", sum)
		}
	}

	// Every family the text exposition shows is in the protobuf one, in
	// the same order.
	text := fetchEndpoint(t, m, "GET", "/metrics?format=text", "127.0.0.1:1", nil).Body.String()
	var want []string
	for l := range strings.SplitSeq(text, "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			want = append(want, strings.Fields(f)[0])
		}
	}
	got := familyNames(decodeFamilies(t, fetchEndpoint(t, m, "GET", "/metrics?format=protobuf", "127.0.0.1:1", nil).Body.Bytes()))
	if strings.Join(got, ",") != strings.Join(want, ",") {
		sort.Strings(got)
		sort.Strings(want)
		t.Errorf("protobuf families differ from text's:\n%v\n%v", got, want)
	}

	// gzip as for the other formats.
	w := fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:1", map[string]string{"Accept": acceptProm316Proto, "Accept-Encoding": "gzip"})
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(decodeFamilies(t, plain)) < 5 {
		t.Error("gzipped protobuf exposition too short")
	}
}
