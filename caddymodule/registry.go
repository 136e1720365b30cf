package routemetrics

import (
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// The process-wide registry. Caddy builds a fresh set of modules on every
// config reload and cleans up the old set afterwards; metrics must outlive
// both, so the registry is created once and never freed or reset, and every
// reload gets the same family, series and route handles back from
// libmetrics (which returns existing registrations of the same shape).
var global struct {
	once sync.Once
	reg  *lmRegistry
	err  error

	// mu guards namespaces, wishSeq and the Go runtime snapshot.
	mu         sync.Mutex
	namespaces map[string]*namespace
	wishSeq    uint64 // acquisitions so far, numbering bucket wishes
	goRuntime  *goRuntimeMetrics
}

// sharedRegistry returns the process-wide registry, creating it (and the Go
// runtime families) on first use.
func sharedRegistry() (*lmRegistry, error) {
	global.once.Do(func() {
		reg, err := newLMRegistry()
		if err != nil {
			global.err = err
			return
		}
		rt, err := newGoRuntimeMetrics(reg)
		if err != nil {
			global.err = err
			return
		}
		global.reg = reg
		global.goRuntime = rt
		global.namespaces = make(map[string]*namespace)
	})
	return global.reg, global.err
}

// namespace tracks who wants which latency buckets for one lm_http prefix.
// Handlers of the new config are provisioned before those of the old one
// are cleaned up, so the wishes are reference counted: the histogram
// follows explicit buckets while any live handler declares them and goes
// back to the defaults once the last such handler is cleaned up. When the
// list in force loses its last handler while others remain, the one
// declared most recently takes over: the newest config's list wins.
// (libmetrics keeps every series counting across these changes; only the
// exposed buckets follow.)
type namespace struct {
	http     *httpFamilies
	explicit map[string]*bucketWish // key: bucketsKey(bounds)
	current  string                 // key of the bounds registered now; "" = defaults

	// The families' shape (lm_http_options.flags), fixed when the
	// namespace was first registered (shape.go).
	shape httpShape
}

type bucketWish struct {
	bounds []float64
	refs   int
	seq    uint64 // global.wishSeq at the latest acquisition that declared it
}

func bucketsKey(b []float64) string {
	if len(b) == 0 {
		return ""
	}
	key := make([]byte, 0, len(b)*8)
	for _, v := range b {
		key = strconv.AppendFloat(key, v, 'g', -1, 64)
		key = append(key, ',')
	}
	return string(key)
}

// acquireHTTP returns the HTTP families for prefix and records the
// caller's bucket wish (nil: no opinion, defaults unless someone else
// declared buckets). Pair every successful call with releaseHTTP.
func acquireHTTP(prefix string, bounds []float64, shape *httpShape) (*httpFamilies, error) {
	reg, err := sharedRegistry()
	if err != nil {
		return nil, err
	}
	global.mu.Lock()
	defer global.mu.Unlock()
	ns := global.namespaces[prefix]
	if ns == nil {
		var sh httpShape
		if shape != nil {
			sh = *shape
		}
		h, err := reg.registerHTTP(prefix, bounds, sh)
		if err != nil {
			return nil, err
		}
		if err := registerUpstream(reg, h, bounds); err != nil {
			return nil, err
		}
		if err := registerUpgraded(reg, h); err != nil {
			return nil, err
		}
		if err := registerAborted(reg, h); err != nil {
			return nil, err
		}
		ns = &namespace{http: h, explicit: map[string]*bucketWish{}, current: bucketsKey(bounds), shape: sh}
		global.namespaces[prefix] = ns
	} else if err := ns.shape.accepts(prefix, shape); err != nil {
		return nil, err
	} else if key := bucketsKey(bounds); key != "" && key != ns.current {
		if err := ns.register(reg, bounds); err != nil {
			return nil, err
		}
	}
	if key := bucketsKey(bounds); key != "" {
		w := ns.explicit[key]
		if w == nil {
			w = &bucketWish{bounds: slices.Clone(bounds)}
			ns.explicit[key] = w
		}
		w.refs++
		global.wishSeq++
		w.seq = global.wishSeq
	}
	return ns.http, nil
}

// releaseHTTP undoes one acquireHTTP. When the last handler that declared
// the buckets in force goes away, another declared list (if any) or the
// defaults take over.
func releaseHTTP(prefix string, bounds []float64) error {
	key := bucketsKey(bounds)
	if key == "" {
		return nil
	}
	global.mu.Lock()
	defer global.mu.Unlock()
	ns := global.namespaces[prefix]
	if ns == nil {
		return nil
	}
	w := ns.explicit[key]
	if w == nil {
		return nil
	}
	w.refs--
	if w.refs > 0 {
		return nil
	}
	delete(ns.explicit, key)
	if ns.current != key {
		return nil
	}
	var next *bucketWish
	for _, other := range ns.explicit {
		if next == nil || other.seq > next.seq {
			next = other
		}
	}
	if next == nil {
		return ns.register(global.reg, nil)
	}
	return ns.register(global.reg, next.bounds)
}

// register makes bounds the buckets of the namespace's duration and
// upstream histograms, both or (as far as libmetrics lets it) neither.
func (ns *namespace) register(reg *lmRegistry, bounds []float64) error {
	h, err := reg.registerHTTP(ns.http.prefix, bounds, ns.shape)
	if err != nil {
		return err
	}
	ns.http.rebind(h.p)
	if err := registerUpstream(reg, ns.http, bounds); err != nil {
		// Put the duration histogram back on the buckets still in force.
		var cur []float64
		if w := ns.explicit[ns.current]; w != nil {
			cur = w.bounds
		}
		_, _ = reg.registerHTTP(ns.http.prefix, cur, ns.shape)
		return err
	}
	ns.current = bucketsKey(bounds)
	return nil
}

// goRuntimeMetrics mirrors a few Go runtime figures into the registry,
// read with runtime/metrics (no stop-the-world, unlike ReadMemStats).
type goRuntimeMetrics struct {
	samples    []metrics.Sample
	goroutines *int64
	threads    *int64
	heapAlloc  *int64
	heapSys    *int64
	gcCycles   *series
	lastGC     uint64
}

const (
	rmGoroutines = iota
	rmThreads
	rmHeapObjects
	rmHeapUnused
	rmHeapFree
	rmHeapReleased
	rmGCCycles
)

func newGoRuntimeMetrics(reg *lmRegistry) (*goRuntimeMetrics, error) {
	gauge := func(name, help string) (*int64, error) {
		f, err := reg.registerFamily(kindGauge, name, help, nil)
		if err != nil {
			return nil, err
		}
		s, err := f.series(nil)
		if err != nil {
			return nil, err
		}
		return s.gaugeCell(), nil
	}
	m := &goRuntimeMetrics{samples: []metrics.Sample{
		rmGoroutines:   {Name: "/sched/goroutines:goroutines"},
		rmThreads:      {Name: "/sched/threads/total:threads"},
		rmHeapObjects:  {Name: "/memory/classes/heap/objects:bytes"},
		rmHeapUnused:   {Name: "/memory/classes/heap/unused:bytes"},
		rmHeapFree:     {Name: "/memory/classes/heap/free:bytes"},
		rmHeapReleased: {Name: "/memory/classes/heap/released:bytes"},
		rmGCCycles:     {Name: "/gc/cycles/total:gc-cycles"},
	}}
	var err error
	if m.goroutines, err = gauge("go_goroutines", "Number of goroutines that currently exist."); err != nil {
		return nil, err
	}
	if m.threads, err = gauge("go_threads", "Number of OS threads the Go runtime currently uses."); err != nil {
		return nil, err
	}
	if m.heapAlloc, err = gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects (MemStats.HeapAlloc)."); err != nil {
		return nil, err
	}
	if m.heapSys, err = gauge("go_memstats_heap_sys_bytes", "Bytes of heap memory obtained from the OS (MemStats.HeapSys)."); err != nil {
		return nil, err
	}
	f, err := reg.registerFamily(kindCounter, "go_gc_cycles_total", "Number of completed GC cycles.", nil)
	if err != nil {
		return nil, err
	}
	if m.gcCycles, err = f.series(nil); err != nil {
		return nil, err
	}
	return m, nil
}

func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

// refresh copies the runtime's figures into the registry. Scrapes may run
// concurrently, hence the lock: the GC counter is fed by deltas.
func (m *goRuntimeMetrics) refresh() {
	global.mu.Lock()
	defer global.mu.Unlock()
	metrics.Read(m.samples)
	s := m.samples
	atomic.StoreInt64(m.goroutines, int64(sampleUint(s[rmGoroutines])))
	atomic.StoreInt64(m.threads, int64(sampleUint(s[rmThreads])))
	atomic.StoreInt64(m.heapAlloc, int64(sampleUint(s[rmHeapObjects])))
	atomic.StoreInt64(m.heapSys, int64(sampleUint(s[rmHeapObjects])+sampleUint(s[rmHeapUnused])+
		sampleUint(s[rmHeapFree])+sampleUint(s[rmHeapReleased])))
	if gc := sampleUint(s[rmGCCycles]); gc > m.lastGC {
		m.gcCycles.counterAdd(gc - m.lastGC)
		m.lastGC = gc
	}
}

// refreshGoRuntime updates the Go runtime gauges before a scrape.
func refreshGoRuntime() {
	if _, err := sharedRegistry(); err == nil {
		global.goRuntime.refresh()
	}
}
