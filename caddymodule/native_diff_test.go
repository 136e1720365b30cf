package routemetrics

// The differential check of libmetrics' native histograms against
// prometheus/client_golang's. The same observations (int64 nanoseconds:
// libmetrics records them as they are, client_golang observes the float64
// seconds float64(v)/1e9, which is the value libmetrics' bucket choice is
// defined on) go to a libmetrics histogram, read back through the protobuf
// exposition, and to a client_golang histogram with the same classic
// buckets, schema, zero threshold and bucket limit, read back with Write;
// both are compared as client_model messages:
//
//   - classic buckets, count and zero count are identical, the zero
//     threshold too;
//   - the sums agree within the float error of client_golang's running
//     float64 sum (libmetrics' is an exact integer of nanoseconds, rounded
//     once): |ours - theirs| <= gamma(n+3) * sum |x_i|, gamma(k) = k*u /
//     (1 - k*u), u = 2^-53 (n roundings in the running sum, one in each
//     float64(v), one in each division, one in ours);
//   - the native buckets, by the split proved in libmetrics.h: (a) when
//     client_golang ends with at most the limit (or has none), schema,
//     spans and deltas are identical; (b) otherwise libmetrics shows
//     client_golang's buckets halved further, to a schema that fits the
//     limit; (c) unless no schema fits, not even -4: then both are at -4,
//     identical.
//
// TestNativeDifferential runs fixed random streams for every schema and
// reports how often each case occurred (each must); FuzzNativeDifferential
// lets the fuzzer choose streams and settings (tests/go.sh runs it for a
// bounded time; testdata/fuzz/FuzzNativeDifferential holds seeds).

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type nativeCase struct {
	schema     int
	maxBuckets uint32
	zero       float64 // lm_native_options.zero_threshold / NativeHistogramZeroThreshold
	values     []int64
}

func (c nativeCase) String() string {
	return fmt.Sprintf("schema %d, max_buckets %d, zero threshold %g, %d values", c.schema, c.maxBuckets, c.zero, len(c.values))
}

// ours records c in a fresh libmetrics registry and returns the histogram
// as the protobuf exposition shows it.
func (c nativeCase) ours(t testing.TB) *dto.Histogram {
	t.Helper()
	reg, err := newLMRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.free()
	fam, err := reg.register(familySpec{kind: kindHistogram, name: "d", help: "differential",
		native: &nativeSpec{schema: c.schema, maxBuckets: c.maxBuckets, zeroThreshold: c.zero}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := fam.series(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range c.values {
		s.observe(v)
	}
	for _, mf := range decodeFamilies(t, readExposition(t, reg, formatProtobuf, false)) {
		if mf.GetName() == "d" {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("no family d in the protobuf exposition")
	return nil
}

// bucketFactor makes client_golang pick schema s: pickSchema takes the
// largest n with 2^(2^-n) <= factor, so a hair above 2^(2^-s) (the
// exact power could round below it).
func bucketFactor(s int) float64 {
	return math.Exp2(math.Exp2(float64(-s))) * (1 + 1e-12)
}

// theirs records c in a client_golang histogram with the same settings.
func (c nativeCase) theirs(t testing.TB) *dto.Histogram {
	t.Helper()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "d", Help: "differential", Buckets: defaultLatencyBounds(),
		NativeHistogramBucketFactor:    bucketFactor(c.schema),
		NativeHistogramZeroThreshold:   c.zero,
		NativeHistogramMaxBucketNumber: c.maxBuckets,
	})
	for _, v := range c.values {
		h.Observe(float64(v) / 1e9)
	}
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

// buckets expands spans and deltas into index -> count (zero counts, the
// gap fillers, left out).
func buckets(spans []*dto.BucketSpan, deltas []int64) map[int32]int64 {
	out := map[int32]int64{}
	var idx int32
	var c int64
	d := 0
	for _, sp := range spans {
		idx += sp.GetOffset()
		for range sp.GetLength() {
			if d < len(deltas) {
				c += deltas[d]
				d++
			}
			if c != 0 {
				out[idx] = c
			}
			idx++
		}
	}
	return out
}

// halve is a native histogram's buckets at a schema d steps coarser
// (bucket i goes to ceil(i / 2^d)).
func halve(b map[int32]int64, d int32) map[int32]int64 {
	out := map[int32]int64{}
	for i, c := range b {
		j := i
		for range d {
			j = int32(math.Ceil(float64(j) / 2))
		}
		out[j] += c
	}
	return out
}

func sameBuckets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The cases of the comparison (see the top of the file).
type nativeOutcome int

const (
	sameWithinLimit nativeOutcome = iota // (a)
	halvedFurther                        // (b)
	sameAtFloor                          // (c)
)

// compare checks ours against theirs as the header comment says and
// returns which case it was.
func (c nativeCase) compare(t testing.TB, ours, theirs *dto.Histogram) nativeOutcome {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%v: "+format, append([]any{c}, args...)...)
	}
	if ours.GetSampleCount() != theirs.GetSampleCount() || ours.GetSampleCount() != uint64(len(c.values)) {
		fail("count %d, client_golang %d, observed %d", ours.GetSampleCount(), theirs.GetSampleCount(), len(c.values))
	}
	if len(ours.GetBucket()) != len(theirs.GetBucket()) {
		fail("%d classic buckets, client_golang %d", len(ours.GetBucket()), len(theirs.GetBucket()))
	}
	for i, b := range ours.GetBucket() {
		tb := theirs.GetBucket()[i]
		if b.GetUpperBound() != tb.GetUpperBound() || b.GetCumulativeCount() != tb.GetCumulativeCount() {
			fail("classic bucket %d: le %g count %d, client_golang le %g count %d", i,
				b.GetUpperBound(), b.GetCumulativeCount(), tb.GetUpperBound(), tb.GetCumulativeCount())
		}
	}
	var abs float64
	for _, v := range c.values {
		abs += math.Abs(float64(v) / 1e9)
	}
	const u = 0x1p-53
	k := float64(len(c.values) + 3)
	if diff := math.Abs(ours.GetSampleSum() - theirs.GetSampleSum()); diff > k*u/(1-k*u)*abs {
		fail("sum %.17g, client_golang %.17g: %g apart, more than its float error bound %g",
			ours.GetSampleSum(), theirs.GetSampleSum(), diff, k*u/(1-k*u)*abs)
	}
	if ours.GetZeroThreshold() != theirs.GetZeroThreshold() || ours.GetZeroCount() != theirs.GetZeroCount() {
		fail("zero bucket: threshold %g count %d, client_golang threshold %g count %d",
			ours.GetZeroThreshold(), ours.GetZeroCount(), theirs.GetZeroThreshold(), theirs.GetZeroCount())
	}
	theirPos := buckets(theirs.GetPositiveSpan(), theirs.GetPositiveDelta())
	theirNeg := buckets(theirs.GetNegativeSpan(), theirs.GetNegativeDelta())
	ourPos := buckets(ours.GetPositiveSpan(), ours.GetPositiveDelta())
	ourNeg := buckets(ours.GetNegativeSpan(), ours.GetNegativeDelta())
	theirCount := uint32(len(theirPos) + len(theirNeg))
	withinLimit := c.maxBuckets == 0 || theirCount <= c.maxBuckets
	if withinLimit || theirs.GetSchema() == minNativeSchema {
		// (a), (c): the same message, span for span.
		if ours.GetSchema() != theirs.GetSchema() {
			fail("schema %d, client_golang %d (with %d buckets)", ours.GetSchema(), theirs.GetSchema(), theirCount)
		}
		for _, p := range []struct {
			name       string
			os, ts     []*dto.BucketSpan
			odel, tdel []int64
		}{
			{"positive", ours.GetPositiveSpan(), theirs.GetPositiveSpan(), ours.GetPositiveDelta(), theirs.GetPositiveDelta()},
			{"negative", ours.GetNegativeSpan(), theirs.GetNegativeSpan(), ours.GetNegativeDelta(), theirs.GetNegativeDelta()},
		} {
			if !slices.EqualFunc(p.os, p.ts, func(a, b *dto.BucketSpan) bool {
				return a.GetOffset() == b.GetOffset() && a.GetLength() == b.GetLength()
			}) || !slices.Equal(p.odel, p.tdel) {
				fail("%s spans %v deltas %v, client_golang %v %v", p.name, p.os, p.odel, p.ts, p.tdel)
			}
		}
		if withinLimit {
			return sameWithinLimit
		}
		return sameAtFloor
	}
	// (b): client_golang stayed above the limit; ours is its histogram
	// halved down to a schema that fits.
	if ours.GetSchema() >= theirs.GetSchema() {
		fail("client_golang ended with %d buckets > %d at schema %d; ours kept schema %d",
			theirCount, c.maxBuckets, theirs.GetSchema(), ours.GetSchema())
	}
	d := theirs.GetSchema() - ours.GetSchema()
	if !sameBuckets(ourPos, halve(theirPos, d)) || !sameBuckets(ourNeg, halve(theirNeg, d)) {
		fail("buckets at schema %d are not client_golang's (schema %d) halved %d times", ours.GetSchema(), theirs.GetSchema(), d)
	}
	if n := uint32(len(ourPos) + len(ourNeg)); n > c.maxBuckets && ours.GetSchema() != minNativeSchema {
		fail("%d buckets exceed the limit %d at schema %d", n, c.maxBuckets, ours.GetSchema())
	}
	return halvedFurther
}

func (c nativeCase) run(t testing.TB) nativeOutcome {
	t.Helper()
	return c.compare(t, c.ours(t), c.theirs(t))
}

// nativeValue draws one observation: zero, ±1 ns, the int64 extremes,
// latencies, values on and next to bucket boundaries, any magnitude.
func nativeValue(r *rand.Rand) int64 {
	switch r.IntN(12) {
	case 0:
		return 0
	case 1:
		return []int64{1, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1}[r.IntN(5)]
	case 2, 3, 4: // 50 us .. 20 s, log-uniform
		return int64(math.Exp(math.Log(5e4) + r.Float64()*math.Log(4e5)))
	case 5, 6: // a schema-8 bucket boundary (seconds) in nanoseconds, and its neighbours
		b := math.Ldexp(0.5*math.Exp2(float64(r.IntN(256))/256), r.IntN(60)-28)
		return int64(math.Round(b*1e9)) + int64(r.IntN(5)-2)
	case 7: // exact powers of two of a second that are whole nanoseconds
		return 1953125 << r.IntN(30)
	default: // any magnitude, either sign
		v := int64(r.Uint64() >> r.IntN(64))
		if r.IntN(3) == 0 {
			v = -v
		}
		return v
	}
}

func TestNativeDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 2026))
	limits := []uint32{0, 1, 3, 10, 20, 40, 160}
	zeros := []float64{0, -1, 1e-6, 0.001}
	var seen [3]int
	for schema := minNativeSchema; schema <= maxNativeSchema; schema++ {
		for i := range 24 {
			c := nativeCase{schema: schema, maxBuckets: limits[i%len(limits)], zero: zeros[i%len(zeros)]}
			n := []int{1, 5, 50, 400, 2000}[r.IntN(5)]
			for range n {
				c.values = append(c.values, nativeValue(r))
			}
			seen[c.run(t)]++
		}
	}
	t.Logf("native histograms, %d streams: (a) identical to client_golang's within the limit: %d; "+
		"(b) client_golang stayed above the limit, ours is its histogram halved further: %d; "+
		"(c) no schema fits, both identical at -4: %d", seen[0]+seen[1]+seen[2], seen[0], seen[1], seen[2])
	for i, n := range seen {
		if n == 0 {
			t.Errorf("case (%c) never occurred", 'a'+i)
		}
	}
}

// FuzzNativeDifferential: byte 0 picks the schema, byte 1 the limit, byte
// 2 the zero threshold; then each 8 bytes is one observation (little
// endian), read as a raw int64 or, by its low bits, mapped to the kinds of
// values nativeValue draws.
func FuzzNativeDifferential(f *testing.F) {
	f.Add([]byte{7, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{12, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 || len(in) > 3+8*4096 {
			return
		}
		c := nativeCase{
			schema:     int(in[0])%(maxNativeSchema-minNativeSchema+1) + minNativeSchema,
			maxBuckets: []uint32{0, 1, 2, 5, 10, 20, 160, 4096}[in[1]%8],
			zero:       []float64{0, -1, 1e-9, 1e-6, 0.001, 0.5}[in[2]%6],
		}
		for p := in[3:]; len(p) >= 8; p = p[8:] {
			raw := binary.LittleEndian.Uint64(p)
			if raw&0xf0 == 0xf0 {
				c.values = append(c.values, nativeValue(rand.New(rand.NewPCG(raw, 0))))
			} else {
				c.values = append(c.values, int64(raw))
			}
		}
		c.run(t)
	})
}
