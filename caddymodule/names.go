package routemetrics

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Validation rules repeated from libmetrics.h so that `caddy adapt` and
// `caddy validate` reject a bad config with its file and line, before
// anything reaches the C library (which checks again and would fail only at
// provision time).
var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// RFC 9110 token, the syntax of a request method.
	methodTokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

const (
	maxLabels  = 16 // libmetrics: at most 16 labels per family
	maxBuckets = 64 // libmetrics: at most 64 histogram bounds
)

func validateMetricName(name string) error {
	if !metricNameRE.MatchString(name) {
		return fmt.Errorf("metric name %q must match [a-zA-Z_:][a-zA-Z0-9_:]*", name)
	}
	return nil
}

func validateCounterName(name string) error {
	if err := validateMetricName(name); err != nil {
		return err
	}
	if !strings.HasSuffix(name, "_total") || name == "_total" {
		return fmt.Errorf("counter name %q must end in \"_total\"", name)
	}
	return nil
}

// validateNamespace checks that prefix + a family name is still a valid
// metric name.
func validateNamespace(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !metricNameRE.MatchString(prefix) {
		return fmt.Errorf("namespace %q must match [a-zA-Z_:][a-zA-Z0-9_:]* (it is prepended to metric names)", prefix)
	}
	return nil
}

func validateLabelName(name string) error {
	if !labelNameRE.MatchString(name) {
		return fmt.Errorf("label name %q must match [a-zA-Z_][a-zA-Z0-9_]*", name)
	}
	if strings.HasPrefix(name, "__") {
		return fmt.Errorf("label name %q must not start with \"__\" (reserved by Prometheus)", name)
	}
	return nil
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
