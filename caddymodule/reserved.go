package routemetrics

import "fmt"

// builtinClash returns the built-in family that a configured family of
// kind k named name would clash with in namespace (libmetrics' own:
// lm_builtin_clash; then the plugin's: ownFamilies), or "". libmetrics
// would refuse the name at provision time (or hide a built-in with it);
// this says so at adapt time, with the line.
func builtinClash(k familyKind, name, namespace string) string {
	if b := lmBuiltinClash(k, name, &namespace); b != "" {
		return b
	}
	for id := range ownFamilies {
		if own := ownID(id).nameIn(namespace); lmNamesClash(k, name, ownFamilies[id].kind, own) {
			return own
		}
	}
	return ""
}

// namespaceClash returns the family of those namespace adds (its HTTP
// families, libmetrics' and the plugin's) that a family of kind k named
// name would clash with, or "". The built-in families of no namespace are
// left to builtinClash, which every block applies to its own names.
func namespaceClash(k familyKind, name, namespace string) string {
	if lmBuiltinClash(k, name, nil) != "" {
		return ""
	}
	if b := lmBuiltinClash(k, name, &namespace); b != "" {
		return b
	}
	for id := range ownFamilies {
		f := &ownFamilies[id]
		if own := ownID(id).nameIn(namespace); f.perNamespace && lmNamesClash(k, name, f.kind, own) {
			return own
		}
	}
	return ""
}

// checkReservedName refuses a business counter whose family would clash
// with a built-in one. OpenMetrics exposes counter x_total as family x, so
// go_goroutines_total collides with the go_goroutines gauge.
func checkReservedName(name, namespace string) error {
	if b := builtinClash(kindCounter, name, namespace); b != "" {
		return fmt.Errorf("counter name %q collides with the built-in metric %s (a counter x_total is exposed as family x)", name, b)
	}
	return nil
}
