package routemetrics

import (
	"strings"
	"testing"
)

// Every entry of the plugin's own family table is complete and valid, and
// a configured name that would clash with it is refused by the same check
// the Caddyfile and JSON configurations go through, so a family added to
// the table is reserved without more code.
func TestOwnFamiliesReserved(t *testing.T) {
	for id := range ownFamilies {
		f := &ownFamilies[id]
		if f.name == "" || f.help == "" {
			t.Fatalf("ownFamilies[%d] has no name or help: %+v", id, f)
		}
		for _, ns := range []string{"", "shop_"} {
			name := ownID(id).nameIn(ns)
			if err := lmCheckName(f.kind, name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if b := lmBuiltinClash(f.kind, name, &ns); b != "" {
				t.Errorf("%s clashes with libmetrics' %s", name, b)
			}
			for other := range ownFamilies {
				if o := ownID(other).nameIn(ns); other != id && lmNamesClash(f.kind, name, ownFamilies[other].kind, o) {
					t.Errorf("%s clashes with %s", name, o)
				}
			}
			// A business counter named after it (a counter x_total is family x).
			counter := name
			if f.kind != kindCounter {
				counter += "_total"
			}
			err := checkReservedName(counter, ns)
			if err == nil || !strings.Contains(err.Error(), "collides with the built-in metric "+name) {
				t.Errorf("counter %s in namespace %q: %v", counter, ns, err)
			}
			// A Server-Timing histogram named after it.
			if b := builtinClash(kindHistogram, strings.TrimSuffix(name, "_total"), ns); b != name {
				t.Errorf("histogram %s in namespace %q clashes with %q, want %s", strings.TrimSuffix(name, "_total"), ns, b, name)
			}
			// One of every namespace, seen from another block.
			if got := namespaceClash(kindCounter, counter, ns); f.perNamespace != (got == name) {
				t.Errorf("namespaceClash(%s, %q) = %q; per namespace: %v", counter, ns, got, f.perNamespace)
			}
		}
	}
	// Names that clash with nothing are left alone.
	for _, name := range []string{"orders_total", "go_other_total", "shop_http_upstream_total"} {
		if err := checkReservedName(name, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A name holding a NUL would be cut short at the C boundary; the checks
// refuse it instead of checking what is left.
func TestNamesWithNUL(t *testing.T) {
	if err := validateCounterName("orders_total\x00x"); err == nil {
		t.Error("counter name with a NUL accepted")
	}
	if err := validateMetricName("9\x00"); err == nil {
		t.Error("metric name with a NUL accepted")
	}
	if lmValidLabelName("a\x00b") || lmValidMetricName("a\x00") {
		t.Error("a name with a NUL is valid")
	}
	if err := validateNamespace("shop_\x00"); err == nil {
		t.Error("namespace with a NUL accepted")
	}
}
