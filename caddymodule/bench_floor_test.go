package routemetrics

// What the cheapest exact recording of a request cannot avoid inside
// Caddy: each step route_metrics takes per request, alone, on a request
// context and vars table that a loaded Caddy server built (captured from a
// real request through caddyhttp.Server.ServeHTTP, so the context has
// Caddy's depth and the vars table Caddy's entries). The sum of the steps
// is a lower bound for route_metrics' own cost per request (BenchmarkChain
// Overhead's own-ns/op): the steps alone, with warm caches and nothing in
// between, in a loop.
//
//	step=crossing     one call into libmetrics that does nothing (cgo's
//	                  own cost, paid by every record)
//	step=record       lm_route_record on a route: the crossing and the
//	                  C work (counter, histogram, bytes)
//	step=clock        time.Since of Caddy's start time: the one clock read
//	step=context      r.Context().Value(VarsCtxKey): finding the vars table
//	step=vars-miss    the vars lookup that finds no enclosing tracker
//	step=vars-store   storing the tracker in the vars table and, at the
//	                  end, the recorded marker (two stores)
//	step=start-time   reading Caddy's start time from the vars table
//	step=proxied      the vars lookup that tells a proxied request apart
//	step=pool         taking a tracker from its pool and putting it back
//	step=inflight     the in-flight gauge's +1 and -1 (two atomic adds)
//	step=reset        clearing a used tracker before it goes back (the
//	                  fields a plain request sets, then the whole struct)
//
// Run: go test -run '^$' -bench '^BenchmarkFloor$' -cpu 1 (bench/run.sh
// part chain runs it beside BenchmarkChainOverhead).

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() { registerTestDirective("lm_bench_capture", benchCapture{}) }

// benchCapture (http.handlers.lm_bench_capture, test binary only) hands
// the request it serves to captured and answers 200.
type benchCapture struct{}

var captured = make(chan *http.Request, 1)

func (benchCapture) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.lm_bench_capture", New: func() caddy.Module { return new(benchCapture) }}
}

func (benchCapture) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	select {
	case captured <- r:
	default:
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// caddyRequestContext serves one request through a loaded Caddy server
// (the chain benchmark's routes) and returns it as the final handler saw
// it: its context and vars table are Caddy's.
func caddyRequestContext(b *testing.B) *http.Request {
	srv := loadChains(b, writeChainSpec(b), chainConfig{name: "capture",
		global: "order lm_bench_capture last", backend: "lm_bench_capture"})[0]
	srv.ServeHTTP(&chainWriter{h: http.Header{}}, newChainRequest())
	select {
	case r := <-captured:
		return r
	default:
		b.Fatal("the capture handler did not run")
		return nil
	}
}

var floorSink atomic.Int64

func BenchmarkFloor(b *testing.B) {
	r := caddyRequestContext(b)
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	start, ok := vars[startTimeVar].(time.Time)
	if vars == nil || !ok {
		b.Fatalf("the captured request has no vars table or start time: %v", vars)
	}
	f, err := lmRecord() // BenchmarkRecord's private registry and routes
	if err != nil {
		b.Fatal(err)
	}
	hf, rt := f.http, f.routes[0]
	ctx := r.Context()
	used := new(tracker)
	steps := []struct {
		name string
		run  func()
	}{
		{"crossing", cgoFloor},
		{"record", func() { rt.record(methodGet, http.StatusOK, 1234567, 0, 2, nil) }},
		{"clock", func() { floorSink.Add(int64(time.Since(start))) }},
		{"context", func() {
			if ctx.Value(caddyhttp.VarsCtxKey) == nil {
				b.Fatal("no vars table")
			}
		}},
		{"vars-miss", func() {
			if _, ok := vars[trackerVar].(*tracker); ok {
				b.Fatal("a tracker is in the vars table")
			}
		}},
		{"vars-store", func() {
			vars[trackerVar] = recordedTracker
			vars[trackerVar] = recordedTracker
		}},
		{"start-time", func() {
			if _, ok := vars[startTimeVar].(time.Time); !ok {
				b.Fatal("no start time")
			}
		}},
		{"proxied", func() {
			if _, ok := vars[proxyPreparedVar]; ok {
				b.Fatal("the request was proxied")
			}
		}},
		{"pool", func() { trackerPool.Put(trackerPool.Get()) }},
		{"inflight", func() {
			atomic.AddInt64(rt.inflight, 1)
			atomic.AddInt64(rt.inflight, -1)
		}},
		{"reset", func() {
			t := used
			t.vars, t.ctx, t.route, t.http, t.start, t.method = vars, ctx, rt, hf, start, r.Method
			t.rec.ResponseWriter, t.rec.t, t.rec.status, t.rec.wroteHeader = nil, t, 200, true
			*t = tracker{}
		}},
	}
	for _, s := range steps {
		b.Run("step="+s.name, func(b *testing.B) {
			for b.Loop() {
				s.run()
			}
		})
	}
	delete(vars, trackerVar)
}
