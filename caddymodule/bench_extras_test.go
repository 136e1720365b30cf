package routemetrics

// What the issue-8 extras cost per request on the Go side, each row
// including the single cgo crossing:
//
//	plain             tracker.enter + finish, no extras (lm_route_record)
//	upstream          + reverse_proxy's latency read from the replacer and
//	                  one histogram observation (lm_route_record_ex, pooled
//	                  C record)
//	upstream+id       + the request ID as exemplar on the request counter,
//	                  its latency bucket and the upstream bucket
//	upstream+id+st    + a two-entry Server-Timing header parsed into four
//	                  observations
//
// Requests are 1 us apart (start times advance by 1 us), so, as on a busy
// route, most exemplar slots are not due (libmetrics keeps at most one new
// exemplar per slot per 100 us) and the +id row is mostly the check.
// The C side alone is in bench/lm_bench.c (lm_route_record_ex rows).
// Run: go test -run '^$' -bench RequestExtras -benchmem

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func BenchmarkRequestExtras(b *testing.B) {
	h := routeMetrics(b, `{"name":"b_ex_api","namespace":"b_ex_","server_timing":{"metrics":[
		{"name":"db","queries":"b_ex_db_queries_total","duration":"b_ex_db_query_duration_seconds",
		 "operations":["select","insert"]}]}}`)
	repl := caddy.NewReplacer()
	repl.Set(replUpstreamHostport, "127.0.0.1:8081")
	repl.Set(replUpstreamLatency, 2500*time.Microsecond)
	empty := caddy.NewReplacer()
	timing := http.Header{serverTimingHeader: {`db;desc="select";dur=3.2, db;desc="insert";dur=7.5`}}
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	for _, c := range []struct {
		name   string
		repl   *caddy.Replacer
		id     string
		header bool
	}{
		{"plain", empty, "", false},
		{"upstream", repl, "", false},
		{"upstream+id", repl, id, false},
		{"upstream+id+st", repl, id, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			start := time.Now()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				t := &tracker{http: h.http, start: start.Add(time.Duration(i) * time.Microsecond), repl: c.repl}
				t.enter(h.route)
				t.addHandler(h)
				if c.id != "" {
					t.reqIDHeader, t.reqID = "X-Request-Id", c.id
				}
				if c.header {
					t.onHeader(timing, 200)
				}
				t.finish("GET", 200, 1200*time.Microsecond)
			}
		})
	}
}
