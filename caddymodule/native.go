package routemetrics

import (
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Prometheus native histograms for the latency histograms route_metrics
// records (request latency, upstream latency, Server-Timing durations):
// exponential buckets chosen by a schema, kept by libmetrics beside the
// classic buckets and exposed in the protobuf format Prometheus negotiates
// for them (metrics_endpoint.go). Text and OpenMetrics scrapes see the
// classic buckets only, exactly as without native ones.

// NativeHistograms configures the native buckets of the latency histograms
// a route_metrics block declares. Omitted: on, schema 3, 160 buckets.
type NativeHistograms struct {
	// Off keeps the classic buckets only.
	Off bool `json:"off,omitempty"`
	// Schema from -4 to 8: each bucket is 2^(2^-schema) times as wide as
	// the one before it (3: 1.09, 8 buckets per power of two). Default 3.
	Schema *int `json:"schema,omitempty"`
	// MaxBuckets caps the populated buckets a series exposes: past it the
	// scrape shows a coarser schema (halving the resolution until it
	// fits). From 1 to 4096, default 160.
	MaxBuckets int `json:"max_buckets,omitempty"`
}

const (
	defaultNativeSchema     = 3
	defaultNativeMaxBuckets = 160
	minNativeSchema         = -4
	maxNativeSchema         = 8
	maxNativeMaxBuckets     = 4096
)

// nativeSpec is what libmetrics is asked for (lm_native_options).
type nativeSpec struct {
	schema     int
	maxBuckets uint32
	// zeroThreshold in seconds; 0: client_golang's default 2^-128, < 0:
	// exactly 0. route_metrics always uses the default.
	zeroThreshold float64
}

// defaultNative is what a block that says nothing about native histograms
// gets.
func defaultNative() *nativeSpec { return (*NativeHistograms)(nil).spec() }

func (n *NativeHistograms) validate() error {
	if n == nil {
		return nil
	}
	if n.Off && (n.Schema != nil || n.MaxBuckets != 0) {
		return fmt.Errorf("native_histograms: off takes no schema or max_buckets")
	}
	if n.Schema != nil && (*n.Schema < minNativeSchema || *n.Schema > maxNativeSchema) {
		return fmt.Errorf("native_histograms: schema %d must be from %d to %d", *n.Schema, minNativeSchema, maxNativeSchema)
	}
	if n.MaxBuckets < 0 || n.MaxBuckets > maxNativeMaxBuckets {
		return fmt.Errorf("native_histograms: max_buckets %d must be from 1 to %d", n.MaxBuckets, maxNativeMaxBuckets)
	}
	return nil
}

// spec is the native buckets n asks for, defaults filled in; nil: off.
func (n *NativeHistograms) spec() *nativeSpec {
	s := &nativeSpec{schema: defaultNativeSchema, maxBuckets: defaultNativeMaxBuckets}
	if n == nil {
		return s
	}
	if n.Off {
		return nil
	}
	if n.Schema != nil {
		s.schema = *n.Schema
	}
	if n.MaxBuckets != 0 {
		s.maxBuckets = uint32(n.MaxBuckets)
	}
	return s
}

// key identifies n's settings: "" for nil (no opinion: the defaults), so
// blocks that say nothing never disagree with one that does.
func (n *NativeHistograms) key() string {
	if n == nil {
		return ""
	}
	return n.spec().key()
}

// key identifies what libmetrics is asked for ("off" for nil).
func (s *nativeSpec) key() string {
	if s == nil {
		return "native=off"
	}
	return fmt.Sprintf("native=%d/%d/%g", s.schema, s.maxBuckets, s.zeroThreshold)
}

// parseNativeHistograms parses (the dispenser is on the token)
//
//	native_histograms off
//	native_histograms {
//	    schema      <-4..8>
//	    max_buckets <1..4096>
//	}
func parseNativeHistograms(d *caddyfile.Dispenser) (*NativeHistograms, error) {
	n := &NativeHistograms{}
	if d.NextArg() {
		if d.Val() != "off" {
			return nil, d.Errf("native_histograms: unexpected %q; say off, or give schema and max_buckets in a block", d.Val())
		}
		n.Off = true
		if d.NextArg() {
			return nil, d.Errf("native_histograms: off takes nothing after it; unexpected %q", d.Val())
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if n.Off {
			return nil, d.Err("native_histograms: off takes no block")
		}
		switch sub := d.Val(); sub {
		case "schema":
			if n.Schema != nil {
				return nil, d.Err("native_histograms: schema given twice")
			}
			v, err := intArg(d, "native_histograms: schema", minNativeSchema, maxNativeSchema)
			if err != nil {
				return nil, err
			}
			n.Schema = &v
		case "max_buckets":
			if n.MaxBuckets != 0 {
				return nil, d.Err("native_histograms: max_buckets given twice")
			}
			v, err := intArg(d, "native_histograms: max_buckets", 1, maxNativeMaxBuckets)
			if err != nil {
				return nil, err
			}
			n.MaxBuckets = v
		default:
			return nil, d.Errf("native_histograms: unknown subdirective %q (expected schema or max_buckets)", sub)
		}
	}
	return n, nil
}

// What each histogram family has recorded since the process started: the
// native buckets its first registration asked for (nil: none). libmetrics
// fixes them then (past observations cannot be split finer), so a reload
// may show less resolution than that, never more; nativeFor caps what a
// later configuration asks for, and says so, instead of failing the
// reload.
var nativeRecorded = struct {
	sync.Mutex
	m map[string]*nativeSpec
}{m: map[string]*nativeSpec{}}

// nativeFor returns what histogram family name may be given of want, and a
// warning when that is less than asked. Call under nativeRecorded's lock
// and pair a successful registration with noteNative.
func nativeFor(name string, want *nativeSpec) (*nativeSpec, string) {
	rec, known := nativeRecorded.m[name]
	switch {
	case !known || want == nil:
		return want, ""
	case rec == nil:
		return nil, fmt.Sprintf("%s has been recorded without native histograms since Caddy started; they appear after a restart", name)
	case want.schema > rec.schema || want.zeroThreshold != rec.zeroThreshold:
		got := *want
		got.schema = min(want.schema, rec.schema)
		got.zeroThreshold = rec.zeroThreshold
		return &got, fmt.Sprintf("%s has been recorded at native schema %d since Caddy started; schema %d takes effect after a restart", name, rec.schema, want.schema)
	}
	return want, ""
}

// noteNative records what family name was created with, the first time.
func noteNative(name string, got *nativeSpec) {
	if _, known := nativeRecorded.m[name]; !known {
		nativeRecorded.m[name] = got
	}
}

// registerLatencyHistogram registers (or changes in place, on reloads) one
// of the plugin's latency histograms: spec's name, help, labels, bounds
// and kind (the rest filled in here), with the native buckets the
// configuration asks for as far as the family's recording allows, and a
// warning when that is less.
func registerLatencyHistogram(reg *lmRegistry, spec familySpec, want *nativeSpec) (*family, string, error) {
	nativeRecorded.Lock()
	defer nativeRecorded.Unlock()
	got, warning := nativeFor(spec.name, want)
	spec.kind, spec.maxSeries, spec.native, spec.replace = kindHistogram, familyMaxSeries, got, true
	fam, err := reg.register(spec)
	if err != nil {
		return nil, "", err
	}
	noteNative(spec.name, got)
	return fam, warning, nil
}
