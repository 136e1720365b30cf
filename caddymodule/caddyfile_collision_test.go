package routemetrics

import (
	"strings"
	"testing"
)

// A business counter may not be exposed as the HTTP family of a namespace
// that another block declares: libmetrics refuses it at provision time, so
// the adapter must refuse it first and name the line, whichever block comes
// first in the file.
func TestCaddyfileCounterCollidesWithOtherNamespace(t *testing.T) {
	cases := []struct {
		name string
		text string
		want string
		line string
	}{
		{"namespace first", `
http://:18080 {
	handle /shop/* {
		route_metrics shop {
			namespace shop_
		}
	}
	handle /c {
		route_metrics c {
			counter shop_http_requests_total {
				method POST
			}
		}
	}
}`, `counter name "shop_http_requests_total" collides with the built-in metric shop_http_requests_total of namespace "shop_" declared at Caddyfile:4`, "at Caddyfile:9"},
		{"counter first", `
http://:18080 {
	handle /c {
		route_metrics c {
			counter shop_http_request_duration_seconds_total
		}
	}
}
http://:18081 {
	route_metrics {
		namespace shop_
	}
}`, `namespace "shop_" makes its built-in metric shop_http_request_duration_seconds collide with counter "shop_http_request_duration_seconds_total" declared at Caddyfile:4`, "at Caddyfile:10"},
		{"default namespace elsewhere", `
http://:18080 {
	route_metrics
}
http://:18081 {
	route_metrics a {
		namespace a_
		counter http_response_size_bytes_total
	}
}`, `of namespace "" declared at Caddyfile:2`, "at Caddyfile:7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := adapt(cf(c.text))
			if err == nil {
				t.Fatal("adapted without error")
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || !strings.Contains(msg, c.line) {
				t.Errorf("error %q lacks %q or %q", msg, c.want, c.line)
			}
		})
	}
}

func TestCaddyfileCounterBesideOtherNamespaceAccepted(t *testing.T) {
	_, err := adapt(cf(`
http://:18080 {
	route_metrics {
		namespace shop_
	}
	route_metrics c {
		counter shop_orders_total
		counter http_requests_served_total
	}
}`))
	if err != nil {
		t.Fatalf("no collision, yet: %v", err)
	}
}
