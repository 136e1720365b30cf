package routemetrics

// This is the only file that imports "C": everything else in the package
// talks to libmetrics through the small typed wrapper below, so the cgo
// pointer rules are checked in one place.
//
// Compiler and linker flags come from pkg-config (libmetrics.pc for the
// core, libmetrics-report.pc for the status page, both installed by
// `cmake --install`). xcaddy.sh and tests/go.sh point PKG_CONFIG_PATH at
// a private install prefix and add the run-time search path through
// CGO_LDFLAGS, so no path is baked into this file.

/*
#cgo pkg-config: libmetrics libmetrics-report
#cgo noescape lm_route_record_sized
#cgo nocallback lm_route_record_sized
#cgo noescape lmgo_route_record
#cgo nocallback lmgo_route_record
#cgo noescape lmgo_route_record_ex
#cgo nocallback lmgo_route_record_ex
#cgo noescape lm_version
#cgo nocallback lm_version
#cgo noescape lm_expo_read
#cgo nocallback lm_expo_read
#cgo nocallback lm_counter_add
#cgo noescape lm_histogram_observe
#cgo nocallback lm_histogram_observe
#include <stdlib.h>
#include <libmetrics.h>
#include <libmetrics_report.h>
// One request's lm_request_record with its arrays, in C memory: cgo forbids
// handing C a Go struct that points at other Go memory, so the record and
// everything it points to live in one C block, reused through a sync.Pool
// (requestRecord below).
#define LMGO_MAX_COUNTERS 32
#define LMGO_MAX_OBS 136
#define LMGO_MAX_NAME 64
#define LMGO_MAX_ID 512
typedef struct lmgo_record {
	lm_request_record rec;
	lm_exemplar ex;
	lm_series *counters[LMGO_MAX_COUNTERS];
	lm_observation obs[LMGO_MAX_OBS];
	char name[LMGO_MAX_NAME];
	char id[LMGO_MAX_ID];
} lmgo_record;
// lm_route_record_sized without business counters, the common request.
// The route (C memory) travels as an integer: cgo checks every pointer
// argument on every call for Go memory, and a pointer to a C type is no
// exception, so with no pointer argument it checks nothing.
static inline void lmgo_route_record(uintptr_t r, lm_method m, int status, int64_t d,
                                     uint64_t req, uint64_t resp) {
	lm_route_record_sized((lm_route *)r, m, status, d, req, resp, NULL, 0);
}
// lm_route_record_ex on a record in C memory (an lmgo_record); both
// pointers travel as integers, as in lmgo_route_record.
static inline void lmgo_route_record_ex(uintptr_t r, uintptr_t rec) {
	lm_route_record_ex((lm_route *)r, (const lm_request_record *)rec);
}
// The status page's writer callback, exported below (a declaration only:
// a file with //export may not define C functions in its preamble).
extern int lmGoReportWrite(void *ctx, char *buf, size_t len);
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// lm_http_options.flags (shape.go).
const (
	httpStatusClasses    = uint(C.LM_HTTP_STATUS_CLASSES)
	httpDurationNoStatus = uint(C.LM_HTTP_DURATION_NO_STATUS)
)

// methodIndex mirrors lm_method so the request method is mapped in Go and
// handed to lm_route_record without a second crossing.
type methodIndex uint8

const (
	methodGet     = methodIndex(C.LM_METHOD_GET)
	methodHead    = methodIndex(C.LM_METHOD_HEAD)
	methodPost    = methodIndex(C.LM_METHOD_POST)
	methodPut     = methodIndex(C.LM_METHOD_PUT)
	methodDelete  = methodIndex(C.LM_METHOD_DELETE)
	methodConnect = methodIndex(C.LM_METHOD_CONNECT)
	methodOptions = methodIndex(C.LM_METHOD_OPTIONS)
	methodTrace   = methodIndex(C.LM_METHOD_TRACE)
	methodPatch   = methodIndex(C.LM_METHOD_PATCH)
	methodOther   = methodIndex(C.LM_METHOD_OTHER)
	methodCount   = int(C.LM_METHOD_COUNT)
)

// lmError turns a filled lm_error into a Go error carrying the library's
// sentence, which already names the offending value.
func lmError(what string, e *C.lm_error) error {
	msg := C.GoString(&e.message[0])
	if msg == "" {
		msg = C.GoString(C.lm_status_string(e.code))
	}
	return fmt.Errorf("libmetrics: %s: %s", what, msg)
}

// lmVersion reports the linked library's version string.
func lmVersion() string { return C.GoString(C.lm_version()) }

// cStrings copies Go strings into C memory; the caller frees them with free.
type cStrings []*C.char

func newCStrings(ss []string) cStrings {
	out := make(cStrings, len(ss))
	for i, s := range ss {
		out[i] = C.CString(s)
	}
	return out
}

func (cs cStrings) free() {
	for _, p := range cs {
		C.free(unsafe.Pointer(p))
	}
}

// lmRegistry is the process-wide registry. It is never freed: handles into
// it are cached by Caddy modules of configurations that may still be
// draining requests.
type lmRegistry struct {
	p      *C.lm_registry
	limits registryLimits
}

// registryLimits are lm_registry_options and the HTTP families' caps
// (lm_http_options.max_routes and max_series); a zero field takes
// libmetrics' default (LM_DEFAULT_*).
type registryLimits struct {
	maxFamilies, slotCapacity, maxShards, maxLabelValueLen, nativeCapacity int
	maxRoutes, maxSeries                                                   int
}

func (l registryLimits) registryOptions() C.lm_registry_options {
	return C.lm_registry_options{
		max_families:        C.size_t(l.maxFamilies),
		slot_capacity:       C.size_t(l.slotCapacity),
		max_shards:          C.uint(l.maxShards),
		max_label_value_len: C.size_t(l.maxLabelValueLen),
		native_capacity:     C.size_t(l.nativeCapacity),
	}
}

// check refuses, with libmetrics' reason, limits that libmetrics would
// refuse when it creates the registry or a namespace: the same checks,
// made before anything exists, so a configuration fails where it is
// written rather than when the first handler is provisioned.
func (l registryLimits) check() error {
	opts := l.registryOptions()
	var e C.lm_error
	if C.lm_registry_options_check(&opts, &e) != 0 {
		return lmError("registry limits", &e)
	}
	h := C.lm_http_options{max_routes: C.size_t(l.maxRoutes), max_series: C.size_t(l.maxSeries)}
	if C.lm_http_options_check(&h, &e) != 0 {
		return lmError("namespace limits", &e)
	}
	return nil
}

// newLMRegistry makes a registry with libmetrics' default limits.
func newLMRegistry() (*lmRegistry, error) { return newLMRegistryWith(registryLimits{}) }

func newLMRegistryWith(l registryLimits) (*lmRegistry, error) {
	opts := l.registryOptions()
	var e C.lm_error
	p := C.lm_registry_new(&opts, &e)
	if p == nil {
		return nil, lmError("creating the registry", &e)
	}
	return &lmRegistry{p: p, limits: l}, nil
}

// free releases a registry nothing uses any more. The process-wide one is
// never freed (see above); tests free the private ones they make.
func (r *lmRegistry) free() {
	C.lm_registry_free(r.p)
	r.p = nil
}

// family is a registered metric family.
type family struct {
	p    *C.lm_family
	name string
}

// series is one resolved label set of a family.
type series struct {
	p *C.lm_series
}

type familyKind int

const (
	kindCounter   = familyKind(C.LM_COUNTER)
	kindGauge     = familyKind(C.LM_GAUGE)
	kindHistogram = familyKind(C.LM_HISTOGRAM)
)

// familySpec is everything lm_family_options needs; register turns it into
// C memory for the call and frees it afterwards.
type familySpec struct {
	kind       familyKind
	name, help string
	labelNames []string
	maxSeries  int         // 0: libmetrics' default cap
	bounds     []float64   // histograms: nil selects the default latency buckets
	native     *nativeSpec // histograms: native buckets too; nil: classic only
	replace    bool        // lm_family_replace: another shape of the name is retired
	group      familyGroup // where the status page lists it; zero: business
}

// familyGroup is lm_family_kind: what a family is about, which decides
// where the status page lists it (and which must agree when a family is
// registered again).
type familyGroup int

const (
	// The application's own figures (business counters).
	groupBusiness = familyGroup(C.LM_KIND_BUSINESS)
	// A namespace's HTTP families; the status page shows lm_http's in its
	// routes table and no others.
	groupHTTP = familyGroup(C.LM_KIND_HTTP)
	// What the application reported in Server-Timing headers.
	groupServerTiming = familyGroup(C.LM_KIND_SERVER_TIMING)
	// The plugin's own operation: the Go runtime and how the metrics are
	// served; its counters have their own section.
	groupRuntime = familyGroup(C.LM_KIND_RUNTIME)
)

// cNative copies a nativeSpec into C memory for an options struct (nil
// stays nil); free it after the call.
func cNative(n *nativeSpec) *C.lm_native_options {
	if n == nil {
		return nil
	}
	p := (*C.lm_native_options)(C.calloc(1, C.size_t(unsafe.Sizeof(C.lm_native_options{}))))
	p.schema = C.int(n.schema)
	p.max_buckets = C.uint32_t(n.maxBuckets)
	p.zero_threshold = C.double(n.zeroThreshold)
	return p
}

// register registers (or gets back, on reload) the family spec describes.
// Histograms observe nanoseconds and expose seconds (unit_scale 1e9), so
// their sums stay exact integers.
func (r *lmRegistry) register(spec familySpec) (*family, error) {
	cname := C.CString(spec.name)
	defer C.free(unsafe.Pointer(cname))
	chelp := C.CString(spec.help)
	defer C.free(unsafe.Pointer(chelp))
	var opts C.lm_family_options
	opts._type = C.lm_type(spec.kind)
	opts.name = cname
	opts.help = chelp
	opts.max_series = C.size_t(spec.maxSeries)
	if spec.kind == kindHistogram {
		opts.unit_scale = 1e9
		opts.native = cNative(spec.native)
		defer C.free(unsafe.Pointer(opts.native))
	}
	opts.kind = C.lm_family_kind(spec.group)
	if len(spec.labelNames) > 0 {
		// The pointer array lives in C memory so the struct handed to C
		// holds no Go pointer.
		labels := newCStrings(spec.labelNames)
		defer labels.free()
		arr := (**C.char)(C.malloc(C.size_t(len(labels)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		defer C.free(unsafe.Pointer(arr))
		copy(unsafe.Slice(arr, len(labels)), labels)
		opts.label_names = arr
		opts.nlabels = C.size_t(len(labels))
	}
	if len(spec.bounds) > 0 {
		cb := (*C.double)(C.malloc(C.size_t(len(spec.bounds)) * C.size_t(unsafe.Sizeof(C.double(0)))))
		defer C.free(unsafe.Pointer(cb))
		for i, b := range spec.bounds {
			unsafe.Slice(cb, len(spec.bounds))[i] = C.double(b)
		}
		opts.bounds = cb
		opts.nbounds = C.size_t(len(spec.bounds))
	}
	var e C.lm_error
	var p *C.lm_family
	if spec.replace {
		p = C.lm_family_replace(r.p, &opts, &e)
	} else {
		p = C.lm_family_register(r.p, &opts, &e)
	}
	if p == nil {
		return nil, lmError(fmt.Sprintf("registering %q", spec.name), &e)
	}
	return &family{p: p, name: spec.name}, nil
}

// registerFamily registers a counter or gauge family with libmetrics'
// default cardinality cap.
func (r *lmRegistry) registerFamily(kind familyKind, name, help string, labelNames []string) (*family, error) {
	return r.register(familySpec{kind: kind, name: name, help: help, labelNames: labelNames})
}

// registerServerTimingCounter registers a Server-Timing entry counter with
// the familyMaxSeries cap the HTTP families have: it carries an endpoint
// label.
func (r *lmRegistry) registerServerTimingCounter(name, help string, labelNames []string) (*family, error) {
	return r.register(familySpec{kind: kindCounter, name: name, help: help, labelNames: labelNames,
		maxSeries: familyMaxSeries, group: groupServerTiming})
}

// familyMaxSeries is the cardinality cap of the endpoint-labelled families
// this plugin adds beside the HTTP ones, equal to theirs: beyond it new
// label sets fold into the family's overflow series and
// libmetrics_series_folded_total counts them.
const familyMaxSeries = int(C.LM_DEFAULT_HTTP_MAX_SERIES)

// series resolves a label set once; the returned handle is updated without
// hashing or locking.
func (f *family) series(values []string) (*series, error) {
	var e C.lm_error
	var p *C.lm_series
	if len(values) == 0 {
		p = C.lm_series_get(f.p, nil, &e)
	} else {
		cvals := newCStrings(values)
		defer cvals.free()
		strs := (*C.lm_str)(C.malloc(C.size_t(len(values)) * C.size_t(unsafe.Sizeof(C.lm_str{}))))
		defer C.free(unsafe.Pointer(strs))
		sl := unsafe.Slice(strs, len(values))
		for i := range sl {
			sl[i].ptr = cvals[i]
			sl[i].len = C.size_t(len(values[i]))
		}
		p = C.lm_series_get(f.p, strs, &e)
	}
	if p == nil {
		return nil, lmError(fmt.Sprintf("resolving a series of %q", f.name), &e)
	}
	return &series{p: p}, nil
}

func (s *series) counterAdd(v uint64) { C.lm_counter_add(s.p, C.uint64_t(v)) }

// observe records v in a histogram series (nanoseconds for the plugin's
// histograms, which expose seconds).
func (s *series) observe(v int64) { C.lm_histogram_observe(s.p, C.int64_t(v)) }

// gaugeCell exposes the gauge's cell for Go's sync/atomic.
func (s *series) gaugeCell() *int64 { return (*int64)(unsafe.Pointer(C.lm_gauge_cell(s.p))) }

// count reads the series back (counter value, gauge value, histogram
// count); tests use it.
func (s *series) count() uint64 { return uint64(C.lm_series_count(s.p)) }

// httpFamilies is one lm_http set (a namespace). Route handles are cached
// on the Go side so handlers that inherit an enclosing namespace find their
// route with a map read instead of a crossing.
type httpFamilies struct {
	p      *C.lm_http
	prefix string
	routes sync.Map // string -> *route
	mu     sync.Mutex
	// The namespace's upstream latency histogram (upstream.go), swapped
	// when its buckets change.
	upstream atomic.Pointer[family]
	// Upgraded connections (upgrade.go): lifetime histogram and gauge.
	upgradedDuration, upgradedInflight *family
	// Responses cut off after their header (aborted.go).
	aborted *family
}

// registerHTTP registers the four HTTP families under prefix, shaped as
// shape says. bounds nil selects libmetrics' default latency buckets,
// native nil classic buckets only; different ones than last time change the
// duration histogram in place and keep the counters.
func (r *lmRegistry) registerHTTP(prefix string, bounds []float64, shape httpShape, native *nativeSpec) (*httpFamilies, error) {
	var opts C.lm_http_options
	cprefix := C.CString(prefix)
	defer C.free(unsafe.Pointer(cprefix))
	opts.prefix = cprefix
	opts.max_routes = C.size_t(r.limits.maxRoutes)
	opts.max_series = C.size_t(r.limits.maxSeries)
	opts.flags = C.uint(shape.flags())
	opts.native = cNative(native)
	defer C.free(unsafe.Pointer(opts.native))
	if len(bounds) > 0 {
		cb := (*C.double)(C.malloc(C.size_t(len(bounds)) * C.size_t(unsafe.Sizeof(C.double(0)))))
		defer C.free(unsafe.Pointer(cb))
		sl := unsafe.Slice(cb, len(bounds))
		for i, b := range bounds {
			sl[i] = C.double(b)
		}
		opts.bounds = cb
		opts.nbounds = C.size_t(len(bounds))
	}
	var e C.lm_error
	p := C.lm_http_register(r.p, &opts, &e)
	if p == nil {
		return nil, lmError(fmt.Sprintf("registering the HTTP metrics (namespace %q)", prefix), &e)
	}
	return &httpFamilies{p: p, prefix: prefix}, nil
}

// rebind points an existing Go-side set at the handle libmetrics returned
// for a new registration of the same prefix (always the same pointer; kept
// defensive so cached routes can never go stale).
func (h *httpFamilies) rebind(p *C.lm_http) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p != p {
		h.p = p
		h.routes.Clear()
	}
}

// route returns the handle for an endpoint name, resolving it in libmetrics
// the first time only.
func (h *httpFamilies) route(name string) (*route, error) {
	if v, ok := h.routes.Load(name); ok {
		return v.(*route), nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.routes.Load(name); ok {
		return v.(*route), nil
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var e C.lm_error
	p := C.lm_http_route(h.p, C.lm_str{ptr: cname, len: C.size_t(len(name))}, &e)
	if p == nil {
		return nil, lmError(fmt.Sprintf("resolving route %q", name), &e)
	}
	rt := &route{
		p:        p,
		inflight: (*int64)(unsafe.Pointer(C.lm_route_inflight_cell(p))),
		name:     name,
	}
	h.routes.Store(name, rt)
	return rt, nil
}

// route is one endpoint of an httpFamilies set.
type route struct {
	p *C.lm_route
	// inflight is the C gauge cell; Go updates it with sync/atomic so a
	// request's start costs no crossing.
	inflight *int64
	name     string
	// Lazily resolved series of this route in the plugin's other families
	// (upstream.go, servertiming.go).
	ext routeExt
}

// maxBatch bounds the business counters one lm_route_record call feeds; the
// rare request that matches more spills over into lm_counter_add calls.
const maxBatch = 32

// counterBatch is the array of business counter series handed to
// lm_route_record. It holds only C pointers, so passing it to C is allowed.
type counterBatch struct {
	s [maxBatch]*C.lm_series
	n int
}

// add queues s once per request even when several handlers declare it;
// it reports false when the batch is full.
func (b *counterBatch) add(s *series) bool {
	for i := 0; i < b.n; i++ {
		if b.s[i] == s.p {
			return true
		}
	}
	if b.n == maxBatch {
		return false
	}
	b.s[b.n] = s.p
	b.n++
	return true
}

// cgoFloor calls into libmetrics for nothing (lm_version returns a
// constant): the cost of a crossing alone, for the benchmarks' floor.
func cgoFloor() { C.lm_version() }

// record is the per-request crossing: counts, latency, request and
// response bytes and the batched business counters in one call.
func (rt *route) record(m methodIndex, status int, d time.Duration, reqBytes, bytes uint64, b *counterBatch) {
	if b == nil || b.n == 0 {
		C.lmgo_route_record(C.uintptr_t(uintptr(unsafe.Pointer(rt.p))), C.lm_method(m), C.int(status), C.int64_t(d), C.uint64_t(reqBytes),
			C.uint64_t(bytes))
		return
	}
	C.lm_route_record_sized(rt.p, C.lm_method(m), C.int(status), C.int64_t(d), C.uint64_t(reqBytes),
		C.uint64_t(bytes), &b.s[0], C.size_t(b.n))
}

// Capacities of one requestRecord (the LMGO_ constants above).
const (
	maxRecordCounters     = C.LMGO_MAX_COUNTERS
	maxRecordObservations = C.LMGO_MAX_OBS
	maxExemplarLabelName  = C.LMGO_MAX_NAME - 1
	maxExemplarIDBytes    = C.LMGO_MAX_ID
)

// requestRecord is everything one request feeds beyond the request itself
// (business counters, observations, an exemplar), staged in C memory for
// lm_route_record_ex. Get one with acquireRecord, release it after
// recordEx.
type requestRecord struct {
	c           *C.lmgo_record
	ncounters   int
	nobs        int
	hasExemplar bool
}

var recordPool = sync.Pool{New: func() any {
	c := (*C.lmgo_record)(C.calloc(1, C.size_t(unsafe.Sizeof(C.lmgo_record{}))))
	if c == nil {
		return (*requestRecord)(nil)
	}
	rr := &requestRecord{c: c}
	// The pool drops idle records at GC; their C block goes with them.
	runtime.AddCleanup(rr, func(p unsafe.Pointer) { C.free(p) }, unsafe.Pointer(c))
	return rr
}}

// acquireRecord returns an empty record, or nil if C memory ran out (the
// caller then records the request without extras).
func acquireRecord() *requestRecord {
	rr, _ := recordPool.Get().(*requestRecord)
	if rr != nil {
		rr.ncounters, rr.nobs, rr.hasExemplar = 0, 0, false
	}
	return rr
}

func (rr *requestRecord) release() { recordPool.Put(rr) }

// addCounter queues a business counter +1 once per request; false when
// full.
func (rr *requestRecord) addCounter(s *series) bool {
	for i := 0; i < rr.ncounters; i++ {
		if rr.c.counters[i] == s.p {
			return true
		}
	}
	if rr.ncounters == maxRecordCounters {
		return false
	}
	rr.c.counters[rr.ncounters] = s.p
	rr.ncounters++
	return true
}

// observe queues an observation: a histogram observes v nanoseconds, a
// counter grows by v. exemplar attaches the request's exemplar to it.
// false when full.
func (rr *requestRecord) observe(s *series, v int64, exemplar bool) bool {
	if rr.nobs == maxRecordObservations {
		return false
	}
	o := &rr.c.obs[rr.nobs]
	o.series = s.p
	o.value = C.int64_t(v)
	o.flags = 0
	if exemplar {
		o.flags = C.LM_OBS_EXEMPLAR
	}
	rr.nobs++
	return true
}

// observations reports how many observations are queued.
func (rr *requestRecord) observations() int { return rr.nobs }

// setExemplar attaches (label, id) observed at unixNano. libmetrics drops
// an exemplar it cannot render exactly; an ID longer than the record's
// buffer cannot be valid there either and is not copied.
func (rr *requestRecord) setExemplar(label, id string, unixNano int64) bool {
	if len(label) == 0 || len(label) > maxExemplarLabelName || len(id) == 0 || len(id) > maxExemplarIDBytes {
		return false
	}
	name := unsafe.Slice((*byte)(unsafe.Pointer(&rr.c.name[0])), C.LMGO_MAX_NAME)
	copy(name, label)
	name[len(label)] = 0
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rr.c.id[0])), maxExemplarIDBytes), id)
	rr.c.ex.label_name = &rr.c.name[0]
	rr.c.ex.label_value = C.lm_str{ptr: &rr.c.id[0], len: C.size_t(len(id))}
	rr.c.ex.unix_ns = C.int64_t(unixNano)
	rr.hasExemplar = true
	return true
}

// recordEx is the per-request crossing with extras: the request, its
// business counters, observations and exemplar in one call.
func (rt *route) recordEx(m methodIndex, status int, d time.Duration, reqBytes, bytes uint64, rr *requestRecord) {
	r := &rr.c.rec
	r.method = C.lm_method(m)
	r.status = C.int(status)
	r.duration_ns = C.int64_t(d)
	r.response_bytes = C.uint64_t(bytes)
	r.request_bytes = C.uint64_t(reqBytes)
	r.counters, r.ncounters = nil, 0
	if rr.ncounters > 0 {
		r.counters = &rr.c.counters[0]
		r.ncounters = C.size_t(rr.ncounters)
	}
	r.observations, r.nobservations = nil, 0
	if rr.nobs > 0 {
		r.observations = &rr.c.obs[0]
		r.nobservations = C.size_t(rr.nobs)
	}
	r.exemplar = nil
	if rr.hasExemplar {
		r.exemplar = &rr.c.ex
	}
	C.lmgo_route_record_ex(C.uintptr_t(uintptr(unsafe.Pointer(rt.p))), C.uintptr_t(uintptr(unsafe.Pointer(r))))
}

// expoFormat selects the exposition format.
type expoFormat int

const (
	formatText        = expoFormat(C.LM_FORMAT_TEXT)
	formatOpenMetrics = expoFormat(C.LM_FORMAT_OPENMETRICS)
	formatProtobuf    = expoFormat(C.LM_FORMAT_PROTOBUF)
)

func (f expoFormat) contentType() string {
	return C.GoString(C.lm_format_content_type(C.lm_format(f)))
}

// expo is an open exposition cursor; always end it.
type expo struct {
	p *C.lm_expo
}

var errExpoClosed = errors.New("libmetrics: exposition cursor already ended")

func (r *lmRegistry) expoBegin(f expoFormat, process bool) (*expo, error) {
	var flags C.uint
	if process {
		flags |= C.LM_EXPO_PROCESS
	}
	var e C.lm_error
	p := C.lm_expo_begin(r.p, C.lm_format(f), flags, &e)
	if p == nil {
		return nil, lmError("starting the exposition", &e)
	}
	return &expo{p: p}, nil
}

// read fills buf with the next chunk. (0, nil) means the exposition is
// complete; an error means it failed (libmetrics cut it at a line
// boundary), and what was read so far is a truncated body that must never
// reach a scraper as a complete one.
func (x *expo) read(buf []byte) (int, error) {
	if x.p == nil {
		return 0, errExpoClosed
	}
	if len(buf) == 0 {
		return 0, errors.New("libmetrics: exposition read into an empty buffer")
	}
	n := C.lm_expo_read(x.p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n == 0 {
		var e C.lm_error
		if C.lm_expo_status(x.p, &e) != C.LM_OK {
			return 0, lmError("rendering the exposition", &e)
		}
	}
	return int(n), nil
}

func (x *expo) end() {
	if x.p != nil {
		C.lm_expo_end(x.p)
		x.p = nil
	}
}

// defaultLatencyBounds returns libmetrics' default buckets (documentation
// and tests compare against them).
func defaultLatencyBounds() []float64 {
	var n C.size_t
	p := C.lm_default_latency_bounds(&n)
	out := make([]float64, int(n))
	for i, v := range unsafe.Slice(p, int(n)) {
		out[i] = float64(v)
	}
	return out
}

// reportFormat selects the status page's rendering (status_page.go).
type reportFormat int

const (
	reportMarkdown reportFormat = iota
	reportHTML
)

// reportWriteError is a report that stopped because its destination
// failed (the client went away), not because libmetrics did.
type reportWriteError struct{ err error }

func (e *reportWriteError) Error() string { return "writing the status page: " + e.err.Error() }
func (e *reportWriteError) Unwrap() error { return e.err }

// reportWriter carries the destination through libmetrics' writer
// callback, and the first write error back.
type reportWriter struct {
	w   io.Writer
	err error
}

// report streams the status page of the HTTP set `prefix` into w in chunks
// of at most 4 KiB, written straight from C memory (io.Writer must not
// retain them).
func (r *lmRegistry) report(f reportFormat, prefix, title string, refreshSeconds uint32, w io.Writer) error {
	cPrefix, cTitle := C.CString(prefix), C.CString(title)
	defer C.free(unsafe.Pointer(cPrefix))
	defer C.free(unsafe.Pointer(cTitle))
	opts := C.lm_report_options{http_prefix: cPrefix, title: cTitle, refresh_seconds: C.uint(refreshSeconds)}
	rw := &reportWriter{w: w}
	h := cgo.NewHandle(rw)
	defer h.Delete()
	fn := C.lm_write_fn(C.lmGoReportWrite)
	var e C.lm_error
	var st C.lm_status
	if f == reportHTML {
		st = C.lm_report_html(r.p, &opts, fn, unsafe.Pointer(&h), &e)
	} else {
		st = C.lm_report_markdown(r.p, &opts, fn, unsafe.Pointer(&h), &e)
	}
	if rw.err != nil {
		return &reportWriteError{rw.err}
	}
	if st != C.LM_OK {
		return lmError("rendering the status page", &e)
	}
	return nil
}

//export lmGoReportWrite
func lmGoReportWrite(ctx unsafe.Pointer, buf *C.char, n C.size_t) (ret C.int) {
	rw := (*(*cgo.Handle)(ctx)).Value().(*reportWriter)
	// A panic must not unwind through libmetrics' frames (its buffers
	// would leak): turn it into an aborted write.
	defer func() {
		if p := recover(); p != nil {
			rw.err = fmt.Errorf("status page writer panicked: %v", p)
			ret = 1
		}
	}()
	if _, err := rw.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))); err != nil {
		rw.err = err
		return 1
	}
	return 0
}

// ------------------------------------------------------ names and shapes
// libmetrics' own rules, asked before anything is registered so that
// `caddy validate` can point at the line (libmetrics.h, "names and
// shapes"). A Go string may hold a NUL, which would cut it short at the C
// boundary: such a name is refused here, as no rule allows a NUL.

const (
	maxLabels  = int(C.LM_MAX_LABELS) // labels per family
	maxBuckets = int(C.LM_MAX_BOUNDS) // histogram upper bounds, +Inf not counted
)

// lmValidMetricName: lm_valid_metric_name, also the test of a namespace.
func lmValidMetricName(name string) bool {
	if strings.IndexByte(name, 0) >= 0 {
		return false
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return bool(C.lm_valid_metric_name(cs))
}

// lmValidLabelName: lm_valid_label_name.
func lmValidLabelName(name string) bool {
	if strings.IndexByte(name, 0) >= 0 {
		return false
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return bool(C.lm_valid_label_name(cs))
}

// lmCheckName returns lm_family_check's sentence for a family of kind k
// named name (its name alone: no labels, the default bounds), or nil.
func lmCheckName(k familyKind, name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("metric name %q must not contain a NUL byte", name)
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	opts := C.lm_family_options{_type: C.lm_type(k), name: cs}
	if k == kindHistogram {
		opts.unit_scale = 1e9 // as register: the default bounds in nanoseconds
	}
	var e C.lm_error
	if C.lm_family_check(&opts, &e) != C.LM_OK {
		return errors.New(C.GoString(&e.message[0]))
	}
	return nil
}

// lmBuiltinClash: lm_builtin_clash, the libmetrics family
// (libmetrics_series_folded_total, process_* and, unless httpPrefix is
// nil, the HTTP families of that namespace) a family of kind k named name
// would clash with, or "".
func lmBuiltinClash(k familyKind, name string, httpPrefix *string) string {
	if strings.IndexByte(name, 0) >= 0 || (httpPrefix != nil && strings.IndexByte(*httpPrefix, 0) >= 0) {
		return ""
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var cp *C.char
	if httpPrefix != nil {
		cp = C.CString(*httpPrefix)
		defer C.free(unsafe.Pointer(cp))
	}
	var buf [256]C.char
	if !C.lm_builtin_clash(C.lm_type(k), cn, cp, &buf[0], C.size_t(len(buf))) {
		return ""
	}
	return C.GoString(&buf[0])
}

// lmNamesClash: lm_names_clash, whether families (ka, a) and (kb, b) would
// expose a name in common.
func lmNamesClash(ka familyKind, a string, kb familyKind, b string) bool {
	if strings.IndexByte(a, 0) >= 0 || strings.IndexByte(b, 0) >= 0 {
		return false
	}
	ca, cb := C.CString(a), C.CString(b)
	defer C.free(unsafe.Pointer(ca))
	defer C.free(unsafe.Pointer(cb))
	return bool(C.lm_names_clash(C.lm_type(ka), ca, C.lm_type(kb), cb, nil, 0))
}

// String names the limits as the global option does, defaults included.
func (l registryLimits) String() string {
	or := func(v int, def C.size_t) int {
		if v == 0 {
			return int(def)
		}
		return v
	}
	return fmt.Sprintf("max_families %d, slot_capacity %d, max_shards %d, max_label_value_len %d, native_capacity %d, max_routes %d, max_series %d",
		or(l.maxFamilies, C.LM_DEFAULT_MAX_FAMILIES), or(l.slotCapacity, C.LM_DEFAULT_SLOT_CAPACITY),
		or(l.maxShards, C.LM_DEFAULT_MAX_SHARDS), or(l.maxLabelValueLen, C.LM_DEFAULT_MAX_LABEL_VALUE_LEN),
		or(l.nativeCapacity, C.LM_DEFAULT_NATIVE_CAPACITY), or(l.maxRoutes, C.LM_DEFAULT_MAX_ROUTES),
		or(l.maxSeries, C.LM_DEFAULT_HTTP_MAX_SERIES))
}
