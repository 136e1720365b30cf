package routemetrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Name checks for the configuration, so that `caddy adapt` and `caddy
// validate` reject a bad name with its file and line before anything is
// registered. The rules are libmetrics' own, asked through lm.go; the
// sentences here only say which configured name broke them.

func validateMetricName(name string) error {
	return lmCheckName(kindGauge, name) // a gauge's name: the name rule alone
}

func validateCounterName(name string) error {
	return lmCheckName(kindCounter, name)
}

// validateNamespace checks that prefix + a family name is still a valid
// metric name.
func validateNamespace(prefix string) error {
	if prefix != "" && !lmValidMetricName(prefix) {
		return fmt.Errorf("namespace %q must match [a-zA-Z_:][a-zA-Z0-9_:]* (it is prepended to metric names)", prefix)
	}
	return nil
}

func validateLabelName(name string) error {
	if lmValidLabelName(name) {
		return nil
	}
	// Which sentence: would the name be valid without the reserved "__"?
	if strings.HasPrefix(name, "__") && lmValidLabelName("x"+name[2:]) {
		return fmt.Errorf("label name %q must not start with \"__\" (reserved by Prometheus)", name)
	}
	return fmt.Errorf("label name %q must match [a-zA-Z_][a-zA-Z0-9_]*", name)
}

// parseBuckets parses latency bucket upper bounds in seconds: finite,
// positive, strictly increasing, at most 64.
func parseBuckets(args []string) ([]float64, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("buckets needs at least one upper bound in seconds")
	}
	out := make([]float64, 0, len(args))
	for _, a := range args {
		v, err := strconv.ParseFloat(a, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket bound %q is not a number of seconds", a)
		}
		out = append(out, v)
	}
	return out, validateBuckets(out)
}

func validateBuckets(b []float64) error {
	if len(b) > maxBuckets {
		return fmt.Errorf("%d bucket bounds given, at most %d allowed", len(b), maxBuckets)
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bucket bound %v is not finite (+Inf is always added)", v)
		}
		if v <= 0 {
			return fmt.Errorf("bucket bound %v must be greater than 0 seconds", v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("bucket bounds must be strictly increasing: %v follows %v", v, b[i-1])
		}
	}
	return nil
}
