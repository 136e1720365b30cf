package routemetrics

import (
	"fmt"
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
// runtime families) with libmetrics' default limits if nothing opened it
// before.
func sharedRegistry() (*lmRegistry, error) {
	return createRegistry(registryLimits{})
}

// openRegistry returns the process-wide registry, creating it with limits
// on first use (the routemetrics app, app.go). Its limits are fixed for the
// life of the process: the registry is never freed, because handlers of a
// draining configuration may still record into it, so a configuration
// that asks for other limits than those it was created with is refused,
// with the reason.
func openRegistry(limits registryLimits) (*lmRegistry, error) {
	reg, err := createRegistry(limits)
	if err != nil {
		return nil, err
	}
	if reg.limits.String() != limits.String() { // defaults spelled out equal defaults left out
		return nil, fmt.Errorf("routemetrics: the registry was created with %s and this configuration asks for %s; the registry lives as long as the process (handlers of the old configuration may still record into it), so restart Caddy to change its limits",
			reg.limits, limits)
	}
	return reg, nil
}

func createRegistry(limits registryLimits) (*lmRegistry, error) {
	global.once.Do(func() {
		reg, err := newLMRegistryWith(limits)
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

// namespace tracks who wants which latency histogram settings (buckets,
// native histograms) for one lm_http prefix. Handlers of the new config
// are provisioned before those of the old one are cleaned up, so the
// wishes are reference counted: the histograms follow explicit settings
// while any live handler declares them and go back to the defaults once
// the last such handler is cleaned up. When the settings in force lose
// their last handler while others remain, the ones declared most recently
// take over: the newest config's settings win. (libmetrics keeps every
// series counting across these changes; only what is exposed follows.)
type namespace struct {
	http     *httpFamilies
	explicit map[string]*histWish // key: histSettings.key()
	current  string               // key of the settings registered now; "" = defaults

	// The families' shape (lm_http_options.flags), fixed when the
	// namespace was first registered (shape.go).
	shape httpShape
}

// histSettings are the latency histogram settings one handler declares for
// its namespace; nil fields have no opinion (the defaults).
type histSettings struct {
	bounds []float64
	native *NativeHistograms
}

// key identifies the settings; "" when they state no opinion at all.
func (s histSettings) key() string {
	if n := s.native.key(); n != "" {
		return bucketsKey(s.bounds) + "|" + n
	}
	return bucketsKey(s.bounds)
}

type histWish struct {
	settings histSettings
	refs     int
	seq      uint64 // global.wishSeq at the latest acquisition that declared it
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
// caller's histogram settings (zero: no opinion, defaults unless someone
// else declared settings), with warnings when a histogram cannot show the
// native resolution asked for until a restart (nativeFor). reg is the
// registry the caller's configuration opened (appRegistry). Pair every
// successful call with releaseHTTP.
func acquireHTTP(reg *lmRegistry, prefix string, hs histSettings, shape *httpShape) (*httpFamilies, []string, error) {
	global.mu.Lock()
	defer global.mu.Unlock()
	var warnings []string
	var err error
	ns := global.namespaces[prefix]
	key := hs.key()
	if ns == nil {
		ns = &namespace{http: &httpFamilies{prefix: prefix}, explicit: map[string]*histWish{}}
		if shape != nil {
			ns.shape = *shape
		}
		if warnings, err = ns.register(reg, hs); err != nil {
			return nil, warnings, err
		}
		if err := registerUpgraded(reg, ns.http); err != nil {
			return nil, warnings, err
		}
		if err := registerAborted(reg, ns.http); err != nil {
			return nil, warnings, err
		}
		global.namespaces[prefix] = ns
	} else if err := ns.shape.accepts(prefix, shape); err != nil {
		return nil, nil, err
	} else if key != "" && key != ns.current {
		if warnings, err = ns.register(reg, hs); err != nil {
			return nil, warnings, err
		}
	}
	if key != "" {
		w := ns.explicit[key]
		if w == nil {
			w = &histWish{settings: histSettings{bounds: slices.Clone(hs.bounds), native: hs.native}}
			ns.explicit[key] = w
		}
		w.refs++
		global.wishSeq++
		w.seq = global.wishSeq
	}
	return ns.http, warnings, nil
}

// releaseHTTP undoes one acquireHTTP. When the last handler that declared
// the settings in force goes away, other declared settings (if any) or the
// defaults take over.
func releaseHTTP(prefix string, hs histSettings) ([]string, error) {
	key := hs.key()
	if key == "" {
		return nil, nil
	}
	global.mu.Lock()
	defer global.mu.Unlock()
	ns := global.namespaces[prefix]
	if ns == nil {
		return nil, nil
	}
	w := ns.explicit[key]
	if w == nil {
		return nil, nil
	}
	w.refs--
	if w.refs > 0 {
		return nil, nil
	}
	delete(ns.explicit, key)
	if ns.current != key {
		return nil, nil
	}
	var next *histWish
	for _, other := range ns.explicit {
		if next == nil || other.seq > next.seq {
			next = other
		}
	}
	if next == nil {
		return ns.register(global.reg, histSettings{})
	}
	return ns.register(global.reg, next.settings)
}

// register makes hs the settings of the namespace's duration and upstream
// histograms, both or (as far as libmetrics lets it) neither; the first
// call registers the HTTP families.
func (ns *namespace) register(reg *lmRegistry, hs histSettings) ([]string, error) {
	prefix := ns.http.prefix
	var warnings []string
	want := hs.native.spec()
	durName := prefix + durationFamilySuffix
	nativeRecorded.Lock()
	got, warning := nativeFor(durName, want)
	h, err := reg.registerHTTP(prefix, hs.bounds, ns.shape, got)
	if err == nil {
		noteNative(durName, got)
	}
	nativeRecorded.Unlock()
	if err != nil {
		return nil, err
	}
	if warning != "" {
		warnings = append(warnings, warning)
	}
	if ns.http.p == nil {
		ns.http = h
	} else {
		ns.http.rebind(h.p)
	}
	upstream := ownUpstream.spec(prefix)
	upstream.bounds = hs.bounds
	fam, warning, err := registerLatencyHistogram(reg, upstream, want)
	if err != nil {
		// Put the duration histogram back on the settings still in force.
		cur := histSettings{}
		if w := ns.explicit[ns.current]; w != nil {
			cur = w.settings
		}
		nativeRecorded.Lock()
		back, _ := nativeFor(durName, cur.native.spec())
		_, _ = reg.registerHTTP(prefix, cur.bounds, ns.shape, back)
		nativeRecorded.Unlock()
		return warnings, err
	}
	if warning != "" {
		warnings = append(warnings, warning)
	}
	ns.http.upstream.Store(fam)
	ns.current = hs.key()
	return warnings, nil
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
	gauge := func(id ownID) (*int64, error) {
		f, err := id.register(reg, "")
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
	if m.goroutines, err = gauge(ownGoGoroutines); err != nil {
		return nil, err
	}
	if m.threads, err = gauge(ownGoThreads); err != nil {
		return nil, err
	}
	if m.heapAlloc, err = gauge(ownGoHeapAlloc); err != nil {
		return nil, err
	}
	if m.heapSys, err = gauge(ownGoHeapSys); err != nil {
		return nil, err
	}
	f, err := ownGoGCCycles.register(reg, "")
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
