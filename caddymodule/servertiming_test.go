package routemetrics

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

type stWant struct {
	name, desc string
	escaped    bool
	hasDesc    bool
	durNS      int64
	hasDur     bool
}

func scanAll(s string) ([]stWant, bool) {
	var out []stWant
	sc := stScanner{s: s}
	var e stEntry
	for sc.next(&e) {
		out = append(out, stWant{e.name, e.desc, e.descEscaped, e.hasDesc, e.durNS, e.hasDur})
	}
	return out, sc.bad
}

func ent(name, desc string, durNS int64) stWant {
	return stWant{name: name, desc: desc, hasDesc: desc != "", durNS: durNS, hasDur: durNS >= 0}
}

func TestServerTimingParser(t *testing.T) {
	noDur := int64(-1)
	cases := []struct {
		in   string
		want []stWant
		bad  bool
	}{
		{``, nil, false},
		{`db;desc="select";dur=3.2`, []stWant{ent("db", "select", 3200000)}, false},
		{`db;dur=3.2;desc=select`, []stWant{ent("db", "select", 3200000)}, false},
		{`db;desc="select";dur=3.2, db;desc="insert";dur=7.5`, []stWant{ent("db", "select", 3200000), ent("db", "insert", 7500000)}, false},
		{`cache;dur=0.5, db;desc=select`, []stWant{ent("cache", "", 500000), ent("db", "select", noDur)}, false},
		{"  db ; desc = \"select\" ;\tdur = 3.2  ", []stWant{ent("db", "select", 3200000)}, false},
		{`db;DUR=1;Desc="Select"`, []stWant{ent("db", "Select", 1000000)}, false},
		{`db;dur=1;dur=2;desc=a;desc=b`, []stWant{ent("db", "a", 1000000)}, false}, // first wins (W3C)
		{`,,db;dur=1,, ,`, []stWant{ent("db", "", 1000000)}, false},                // empty list elements
		{`db`, []stWant{ent("db", "", noDur)}, false},
		{`db;dur="3.2"`, []stWant{ent("db", "", 3200000)}, false},
		{`db;dur=1e3`, []stWant{ent("db", "", 1000000000)}, false},
		{`db;dur=1.5E-3`, []stWant{ent("db", "", 1500)}, false},
		{`db;dur=0.0000001`, []stWant{ent("db", "", 0)}, false}, // below a nanosecond
		{`db;dur=.5`, []stWant{ent("db", "", 500000)}, false},
		{`db;dur=5.`, []stWant{ent("db", "", 5000000)}, false},
		{`db;dur=86400000`, []stWant{ent("db", "", 86400000000000)}, false},  // one day
		{`db;dur=123.4567891234`, []stWant{ent("db", "", 123456789)}, false}, // truncated to ns
		{`db;desc="a,b;c=d";dur=1, x`, []stWant{ent("db", "a,b;c=d", 1000000), ent("x", "", noDur)}, false},
		{`db;desc="a\"b";dur=1`, []stWant{{name: "db", desc: `a\"b`, escaped: true, hasDesc: true, durNS: 1000000, hasDur: true}}, false},
		{`db;unknown="x";dur=2`, []stWant{ent("db", "", 2000000)}, false},
		{"db;desc=\"s\xc3\xa9lect\"", []stWant{ent("db", "s\xc3\xa9lect", noDur)}, false}, // obs-text
		// Malformed entries are skipped, the rest kept.
		{`db;dur=-1`, nil, true},
		{`db;dur=+1`, nil, true},
		{`db;dur=NaN`, nil, true},
		{`db;dur=inf`, nil, true},
		{`db;dur=Infinity`, nil, true},
		{`db;dur=1e400`, nil, true},
		{`db;dur=86400000.1`, nil, true},
		{`db;dur=abc`, nil, true},
		{`db;dur=`, nil, true},
		{`db;dur=1e`, nil, true},
		{`db;dur=.`, nil, true},
		{`db;dur=1.2.3`, nil, true},
		{`db;dur="1\2"`, nil, true},
		{`db;dur`, nil, true},
		{`db;=1`, nil, true},
		{`db dur=1`, nil, true},
		{`db;desc="unterminated`, nil, true},
		{`db;desc="x"junk`, nil, true},
		{`"db";dur=1`, nil, true},
		{"d\x01b;dur=1", nil, true},
		{"db;desc=\"\x01\"", nil, true},
		{"db;desc=\"a\\", nil, true},
		{"\xc3\xbc;dur=1", nil, true},
		{`db;dur=1, bad entry, db;dur=2`, []stWant{ent("db", "", 1000000), ent("db", "", 2000000)}, true},
		{`db;desc="a,b" x, db;dur=2`, []stWant{ent("db", "", 2000000)}, true}, // resumes after the comma outside quotes
		{`db;;dur=1`, nil, true},
	}
	for _, c := range cases {
		got, bad := scanAll(c.in)
		want := c.want
		for i := range want {
			if want[i].durNS < 0 {
				want[i].durNS, want[i].hasDur = 0, false
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || bad != c.bad {
			t.Errorf("%q:\n got  %v bad=%v\n want %v bad=%v", c.in, got, bad, want, c.bad)
		}
	}
}

func TestParseDurMillisExact(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "0.0": 0, "3.2": 3200000, "7.5": 7500000, "0.000001": 1, "0.0000019": 1,
		"1": 1000000, "1000": 1000000000, "2.5e1": 25000000, "25e-1": 2500000,
		"00000000000000000000003.2":    3200000,
		"3.20000000000000000000000":    3200000,
		"0.00000000000000000000001e22": 100000, // 1e-23 * 1e22 ms
	} {
		got, ok := parseDurMillis(in)
		if !ok || got != want {
			t.Errorf("parseDurMillis(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-0", "+0", "1e", "e1", "1x", "0x10", "1_0", " 1", "1 ", "1e-", "99999999999999999999"} {
		if got, ok := parseDurMillis(in); ok {
			t.Errorf("parseDurMillis(%q) = %d, accepted", in, got)
		}
	}
}

// renderEntries writes entries back as a header value; parsing it must give
// them back (FuzzServerTiming's round trip).
func renderEntries(es []stWant) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.name)
		if e.hasDesc {
			fmt.Fprintf(&b, `;desc="%s"`, e.desc)
		}
		if e.hasDur {
			fmt.Fprintf(&b, ";dur=%d.%06d", e.durNS/1000000, e.durNS%1000000)
		}
	}
	return b.String()
}

// FuzzServerTiming: any header value. The scanner must end, return only
// entries whose name is a token and whose dur is within [0, 1 day], never
// more entries than bytes, and the entries it returns must round-trip
// through a canonical rendering (quoted desc, exact decimal dur).
func FuzzServerTiming(f *testing.F) {
	// Seeds beyond testdata/fuzz/FuzzServerTiming.
	f.Add(`db;desc="select";dur=3.2, db;desc="insert";dur=7.5`)
	f.Add(`db;dur=1e400, x;desc="a\"b"`)
	f.Fuzz(func(t *testing.T, s string) {
		got, _ := scanAll(s)
		if len(got) > len(s) {
			t.Fatalf("%d entries from %d bytes", len(got), len(s))
		}
		for _, e := range got {
			if !isToken(e.name) {
				t.Fatalf("entry name %q is not a token", e.name)
			}
			if e.durNS < 0 || e.durNS > maxDurationNS || (!e.hasDur && e.durNS != 0) {
				t.Fatalf("dur %d (has %v) out of range", e.durNS, e.hasDur)
			}
			if e.hasDesc && !e.escaped && strings.ContainsAny(e.desc, "\"\\") {
				t.Fatalf("desc %q has quotes or backslashes but is not marked escaped", e.desc)
			}
			for i := 0; i < len(e.desc); i++ {
				if c := e.desc[i]; c < 0x20 && c != '\t' || c == 0x7f {
					t.Fatalf("desc %q has control byte %#x", e.desc, c)
				}
			}
		}
		if len(got) == 0 {
			return
		}
		again, bad := scanAll(renderEntries(got))
		if bad || fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatalf("round trip of %q:\n first  %v\n second %v (bad=%v)", s, got, again, bad)
		}
		_ = utf8.ValidString(s)
	})
}

// ------------------------------------------------------------ process()

func stFixture(t *testing.T, js string, endpoint string) (*stConfig, *route) {
	t.Helper()
	rm := routeMetrics(t, fmt.Sprintf(`{"name":%q,"namespace":"t_st_","server_timing":%s}`, endpoint, js))
	if rm.st == nil {
		t.Fatal("server_timing not provisioned")
	}
	return rm.st, rm.route
}

func TestServerTimingProcessZeroAllocs(t *testing.T) {
	st, rt := stFixture(t, `{"metrics":[
		{"name":"db","queries":"t_st_alloc_queries_total","duration":"t_st_alloc_seconds","operations":["select","insert"]},
		{"name":"cache","queries":"t_st_alloc_cache_total"}]}`, "t_st_alloc")
	h := http.Header{serverTimingHeader: {`db;desc="select";dur=3.2, cache;desc=GET;dur=0.1, db;desc=INSERT;dur=7.5, total;dur=12`}}
	rr := acquireRecord()
	defer rr.release()
	run := func() {
		rr.nobs = 0
		if st.process(h, rt, rr) {
			t.Fatal("well-formed header reported malformed")
		}
	}
	run() // resolves the route's series once
	if rr.observations() != 5 {
		t.Fatalf("%d observations, want 5 (2 db pairs + 1 cache counter)", rr.observations())
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("process allocates %v times per response on the common path", n)
	}
	// Dynamic operations: lookups of known ones do not allocate either.
	st2, rt2 := stFixture(t, `{"metrics":[{"name":"db","queries":"t_st_dyn_total","max_operations":2}]}`, "t_st_dyn")
	h2 := http.Header{serverTimingHeader: {`db;desc=Select, db;desc=update`}}
	run2 := func() {
		rr.nobs = 0
		st2.process(h2, rt2, rr)
	}
	run2()
	if n := testing.AllocsPerRun(200, run2); n != 0 {
		t.Errorf("process with dynamic operations allocates %v times per response", n)
	}
}

func TestServerTimingOperationsBounded(t *testing.T) {
	st, rt := stFixture(t, `{"metrics":[{"name":"db","queries":"t_st_bound_total","max_operations":2}]}`, "t_st_bound")
	before, _ := scrapeShared(t, formatText)
	rr := acquireRecord()
	defer rr.release()
	for _, v := range []string{
		`db;desc=select`, `db;desc=SELECT`, `db;desc=insert`, `db;desc=delete`, `db;desc=update`,
		`db;desc="bad op!"`, `db;desc=9lives`, `db`, `db;desc="a\"b"`,
		`db;desc=` + strings.Repeat("x", 33),
	} {
		rr.nobs = 0
		st.process(http.Header{serverTimingHeader: {v}}, rt, rr)
		rt.recordEx(methodGet, 200, 0, 0, 0, rr)
	}
	after, _ := scrapeShared(t, formatText)
	got := delta(before, after)
	q := func(op string) string { return key("t_st_bound_total", "endpoint", "t_st_bound", "operation", op) }
	for k, want := range map[string]float64{q("select"): 2, q("insert"): 1, q("_other"): 7} {
		if got[k] != want {
			t.Errorf("%s moved by %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
	for k := range after {
		if strings.HasPrefix(k, "t_st_bound_total{") && k != q("select") && k != q("insert") && k != q("_other") {
			t.Errorf("unexpected series %s: max_operations 2 must bound the label", k)
		}
	}
}

func TestServerTimingCapsAndMalformed(t *testing.T) {
	st, rt := stFixture(t, `{"max_entries":3,"metrics":[{"name":"db","queries":"t_st_cap_total","operations":["select"]}]}`, "t_st_cap")
	rr := acquireRecord()
	defer rr.release()
	for _, c := range []struct {
		h         []string
		obs       int
		malformed bool
	}{
		{[]string{`db;desc=select`}, 1, false},
		{[]string{`db;desc=select`, `db;desc=select`}, 2, false}, // repeated header lines
		{[]string{`db;desc=select, db;desc=select, db;desc=select, db;desc=select`}, 3, true},
		{[]string{`db;desc=select`, `x, y`, `db;desc=select`}, 1, true}, // the 4th entry is over 3
		{[]string{strings.Repeat("a", maxServerTimingBytes) + `, db;desc=select`}, 0, true},
		{[]string{`db;dur=-3, db;desc=select`}, 1, true},
		{[]string{`total;dur=1`}, 0, false}, // unconfigured name: ignored, not malformed
	} {
		rr.nobs = 0
		m := st.process(http.Header{serverTimingHeader: c.h}, rt, rr)
		if rr.observations() != c.obs || m != c.malformed {
			t.Errorf("%.60q: %d observations, malformed %v; want %d, %v", c.h, rr.observations(), m, c.obs, c.malformed)
		}
	}
}
