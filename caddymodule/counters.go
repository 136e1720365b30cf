package routemetrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// BusinessCounter is a counter declared inside a route_metrics block. It
// grows by one for every request counted under a route whose handler chain
// declared it and whose method and final status satisfy the conditions
// below (an empty condition list matches everything). Its labels are fixed
// at configuration time, so a counter is exactly one series.
type BusinessCounter struct {
	// Metric name; must end in "_total". Not prefixed by namespace: the
	// name you write is the name Prometheus sees.
	Name string `json:"name"`
	// HELP text shown in the exposition.
	Help string `json:"help,omitempty"`
	// Constant labels, name -> value. Exposed in label-name order.
	Labels map[string]string `json:"labels,omitempty"`
	// Request methods (exact, case-sensitive) that count, e.g. ["POST"].
	Methods []string `json:"methods,omitempty"`
	// Final statuses that count: a class like "2xx" or an exact code like
	// "201".
	Statuses []string `json:"statuses,omitempty"`
}

// labelNames returns the label names in the order the family registers
// them; sorting makes the family's shape independent of declaration order.
func (c *BusinessCounter) labelNames() []string {
	names := make([]string, 0, len(c.Labels))
	for n := range c.Labels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// shape identifies the family a counter belongs to; two declarations of
// one name must agree on it or libmetrics refuses the second.
func (c *BusinessCounter) shape() string {
	return fmt.Sprintf("help=%q labels=%q", c.Help, c.labelNames())
}

func (c *BusinessCounter) validate() error {
	if err := validateCounterName(c.Name); err != nil {
		return err
	}
	if len(c.Labels) > maxLabels {
		return fmt.Errorf("counter %s: %d labels, at most %d allowed", c.Name, len(c.Labels), maxLabels)
	}
	for n := range c.Labels {
		if err := validateLabelName(n); err != nil {
			return fmt.Errorf("counter %s: %w", c.Name, err)
		}
	}
	for _, m := range c.Methods {
		if err := validateMethodCond(m); err != nil {
			return fmt.Errorf("counter %s: %w", c.Name, err)
		}
	}
	for _, s := range c.Statuses {
		if _, err := parseStatusCond(s); err != nil {
			return fmt.Errorf("counter %s: %w", c.Name, err)
		}
	}
	return nil
}

func validateMethodCond(m string) error {
	if !isToken(m) {
		return fmt.Errorf("method %q is not a valid HTTP method token", m)
	}
	if up := strings.ToUpper(m); up != m && methodOf(up) != methodOther {
		return fmt.Errorf("method %q never matches: methods are case-sensitive, did you mean %q?", m, up)
	}
	return nil
}

// statusSet is a bitmap over status codes 0..639, so a condition list of
// classes and exact codes is one bit test per request.
type statusSet [10]uint64

func (s *statusSet) add(code int) { s[code>>6] |= 1 << (code & 63) }
func (s *statusSet) has(code int) bool {
	return code >= 0 && code < 640 && s[code>>6]&(1<<(code&63)) != 0
}
func (s *statusSet) addRange(lo, hi int) {
	for c := lo; c <= hi; c++ {
		s.add(c)
	}
}
func (s *statusSet) union(o statusSet) {
	for i := range s {
		s[i] |= o[i]
	}
}
func (s *statusSet) empty() bool { return *s == statusSet{} }

// parseStatusCond accepts a class "1xx".."5xx" (any case) or an exact code
// 100..599.
func parseStatusCond(cond string) (statusSet, error) {
	var set statusSet
	if len(cond) == 3 && cond[0] >= '1' && cond[0] <= '5' && strings.EqualFold(cond[1:], "xx") {
		lo := int(cond[0]-'0') * 100
		set.addRange(lo, lo+99)
		return set, nil
	}
	code, err := strconv.Atoi(cond)
	if err != nil || len(cond) != 3 || code < 100 || code > 599 {
		return set, fmt.Errorf("status condition %q must be a class like 2xx or a code from 100 to 599", cond)
	}
	set.add(code)
	return set, nil
}

// counterRule is a provisioned BusinessCounter.
type counterRule struct {
	series   *series
	methods  []string // empty: any
	statuses statusSet
	anyCode  bool
}

func (c *BusinessCounter) provision(reg *lmRegistry) (counterRule, error) {
	names := c.labelNames()
	fam, err := reg.registerFamily(kindCounter, c.Name, cHelp(c.Help), names)
	if err != nil {
		return counterRule{}, err
	}
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = c.Labels[n]
	}
	s, err := fam.series(values)
	if err != nil {
		return counterRule{}, err
	}
	rule := counterRule{series: s, methods: slices.Clone(c.Methods), anyCode: len(c.Statuses) == 0}
	for _, cond := range c.Statuses {
		set, err := parseStatusCond(cond)
		if err != nil {
			return counterRule{}, err
		}
		rule.statuses.union(set)
	}
	return rule, nil
}

// cHelp is the help text as libmetrics shows it. It crosses into C as a
// NUL-terminated string, so a NUL in the config (a Caddyfile may hold one)
// would silently cut the text there; libmetrics renders NUL as U+FFFD
// wherever it sees one, so this does the same before the crossing.
func cHelp(help string) string { return strings.ReplaceAll(help, "\x00", "\uFFFD") }

func (r *counterRule) matches(method string, status int) bool {
	if !r.anyCode && !r.statuses.has(status) {
		return false
	}
	if len(r.methods) == 0 {
		return true
	}
	return slices.Contains(r.methods, method)
}
