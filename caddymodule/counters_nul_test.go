package routemetrics

import (
	"strings"
	"testing"
)

// A NUL in a counter's help text (the Caddyfile lexer passes one through)
// must not cut the text at the C boundary: the exposition shows U+FFFD
// there and the rest of the text after it.
func TestCounterHelpWithNUL(t *testing.T) {
	reg, err := sharedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	c := BusinessCounter{Name: "nul_help_test_total", Help: "\x00before\x00after"}
	rule, err := c.provision(reg)
	if err != nil {
		t.Fatal(err)
	}
	rule.series.counterAdd(1)
	for _, f := range []expoFormat{formatText, formatOpenMetrics} {
		_, body := scrapeShared(t, f)
		if want := "# HELP nul_help_test " + "\uFFFDbefore\uFFFDafter\n"; f == formatOpenMetrics && !strings.Contains(body, want) {
			t.Errorf("OpenMetrics body lacks %q", want)
		}
		if want := "# HELP nul_help_test_total " + "\uFFFDbefore\uFFFDafter\n"; f == formatText && !strings.Contains(body, want) {
			t.Errorf("text body lacks %q", want)
		}
	}
}
