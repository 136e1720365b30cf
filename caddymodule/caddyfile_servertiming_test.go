package routemetrics

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUnmarshalRequestIDAndServerTiming(t *testing.T) {
	out, err := adapt(cf(`
http://:18080 {
	route_metrics {
		request_id
		server_timing {
			strip
			max_entries 16
			metric db {
				queries  db_queries_total
				duration db_query_duration_seconds
				operations select insert update delete
				buckets 0.0005 0.001 0.01
			}
			metric cache {
				queries cache_lookups_total
				max_operations 4
			}
		}
	}
	route_metrics api {
		request_id X-Correlation-ID
	}
}`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`{"handler":"route_metrics","request_id":"X-Request-ID","server_timing":{"max_entries":16,"metrics":[` +
			`{"buckets":[0.0005,0.001,0.01],"duration":"db_query_duration_seconds","name":"db","operations":["select","insert","update","delete"],"queries":"db_queries_total"},` +
			`{"max_operations":4,"name":"cache","queries":"cache_lookups_total"}],"strip":true}}`,
		`{"handler":"route_metrics","name":"api","request_id":"X-Correlation-ID"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted JSON lacks %s\nin %s", want, s)
		}
	}
	// The JSON form round-trips through the module with unknown fields refused.
	var rm RouteMetrics
	js := `{"request_id":"X-Request-ID","server_timing":{"strip":true,"max_entries":16,"metrics":[{"name":"db","queries":"db_queries_total","duration":"db_query_duration_seconds","operations":["select"],"buckets":[0.001]}]}}`
	if err := decodeStrict(js, &rm); err != nil {
		t.Fatal(err)
	}
	if err := rm.Validate(); err != nil {
		t.Fatal(err)
	}
	back, _ := json.Marshal(&rm)
	if !strings.Contains(string(back), `"server_timing":{"strip":true,"max_entries":16,"metrics":[{"name":"db"`) {
		t.Errorf("JSON form: %s", back)
	}
}

func TestServerTimingCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, text, want, line string
	}{
		{"unknown server_timing subdirective", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
			}
			stripp
		}
	}
}`, `server_timing: unknown subdirective "stripp"`, "Caddyfile:7"},
		{"unknown metric subdirective", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				query db_queries_total
			}
		}
	}
}`, `unknown subdirective "query"`, "Caddyfile:5"},
		{"no metric", `
http://:18080 {
	route_metrics {
		server_timing {
			strip
		}
	}
}`, "no metric block", "Caddyfile:5"},
		{"metric records nothing", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				operations select
			}
		}
	}
}`, "metric db records nothing", "Caddyfile:6"},
		{"queries without _total", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries
			}
		}
	}
}`, `must end in "_total"`, "Caddyfile:5"},
		{"duration ending in _total", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				duration db_seconds_total
			}
		}
	}
}`, "must not end in _total (e.g. db_seconds)", "Caddyfile:5"},
		{"uppercase operation", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
				operations select INSERT
			}
		}
	}
}`, `write it in lowercase ("insert")`, "Caddyfile:6"},
		{"bad operation", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
				operations 1select
			}
		}
	}
}`, `operation "1select" must be`, "Caddyfile:6"},
		{"operations and max_operations", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
				operations select
				max_operations 3
			}
		}
	}
}`, "operations or max_operations, not both", "Caddyfile:7"},
		{"max_entries out of range", `
http://:18080 {
	route_metrics {
		server_timing {
			max_entries 65
			metric db {
				queries db_queries_total
			}
		}
	}
}`, `max_entries "65" must be a whole number from 1 to 64`, "Caddyfile:4"},
		{"entry name not a token", `
http://:18080 {
	route_metrics {
		server_timing {
			metric "d b" {
				queries db_queries_total
			}
		}
	}
}`, "must be a Server-Timing metric name", "Caddyfile:4"},
		{"metric twice", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
			}
			metric db {
				queries db2_queries_total
			}
		}
	}
}`, "metric db declared twice", "Caddyfile:7"},
		{"collides with a built-in", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				duration http_upstream_duration_seconds
			}
		}
	}
}`, "collides with the built-in metric http_upstream_duration_seconds", "Caddyfile:4"},
		{"collides with a business counter of the block", `
http://:18080 {
	route_metrics {
		counter db_queries_total
		server_timing {
			metric db {
				queries db_queries_total
			}
		}
	}
}`, "which counter db_queries_total of this block already is", "Caddyfile:5"},
		{"same histogram, other buckets, across blocks", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				duration db_seconds
				buckets 0.1 1
			}
		}
	}
	route_metrics api {
		server_timing {
			metric db {
				duration db_seconds
			}
		}
	}
}`, "histogram db_seconds is already declared at Caddyfile:4", "Caddyfile:12"},
		{"queries reused by a business counter elsewhere", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
			}
		}
	}
	route_metrics api {
		counter db_queries_total
	}
}`, "counter db_queries_total is already declared at Caddyfile:4", "Caddyfile:9"},
		{"server_timing twice", `
http://:18080 {
	route_metrics {
		server_timing {
			metric db {
				queries db_queries_total
			}
		}
		server_timing {
			metric x {
				queries x_total
			}
		}
	}
}`, "server_timing given twice", "Caddyfile:8"},
		{"request_id bad header", `
http://:18080 {
	route_metrics {
		request_id "X Request"
	}
}`, "is not a valid header name", "Caddyfile:3"},
		{"request_id two args", `
http://:18080 {
	route_metrics {
		request_id X-A X-B
	}
}`, "request_id takes at most one argument", "Caddyfile:3"},
		{"counter named like the malformed counter", `
http://:18080 {
	route_metrics {
		counter server_timing_malformed_total
	}
}`, "collides with the built-in metric server_timing_malformed", "Caddyfile:3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := adapt(cf(c.text))
			if err == nil {
				t.Fatal("adapted without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q lacks %q", msg, c.want)
			}
			if !strings.Contains(msg, c.line) {
				t.Errorf("error %q does not name %s", msg, c.line)
			}
		})
	}
}

func TestServerTimingJSONValidation(t *testing.T) {
	for js, want := range map[string]string{
		`{"server_timing":{"metrics":[]}}`:                                                                             "no metric block",
		`{"server_timing":{"max_entries":100,"metrics":[{"name":"db","queries":"a_total"}]}}`:                          "max_entries 100",
		`{"server_timing":{"metrics":[{"name":"db"}]}}`:                                                                "records nothing",
		`{"server_timing":{"metrics":[{"name":"db","queries":"a_total","operations":["A"]}]}}`:                         "lowercase",
		`{"server_timing":{"metrics":[{"name":"db","queries":"a_total"},{"name":"x","queries":"a_total"}]}}`:           "both record into a",
		`{"server_timing":{"metrics":[{"name":"db","duration":"a","buckets":[1,0.5]}]}}`:                               "increasing",
		`{"request_id":"bad header"}`:                                                                                  "not a valid header name",
		`{"namespace":"n_","server_timing":{"metrics":[{"name":"db","duration":"n_http_upstream_duration_seconds"}]}}`: "collides with the built-in",
	} {
		var rm RouteMetrics
		if err := decodeStrict(js, &rm); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		err := rm.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", js, err, want)
		}
	}
}
