package routemetrics

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// UnmarshalCaddyfile parses
//
//	metrics_endpoint [<matcher>] {
//	    allow <cidr...>    # repeatable; adds to loopback and private ranges
//	    accept_forwarded   # RISK: the peer decides for forwarded requests
//	}
func (m *MetricsEndpoint) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("metrics_endpoint takes no arguments (put allowed ranges in an allow line inside a block); unexpected %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "allow":
			list := d.RemainingArgs()
			if len(list) == 0 {
				return d.Err("metrics_endpoint: allow needs at least one CIDR")
			}
			if _, err := parseAllow(list); err != nil {
				return d.Errf("metrics_endpoint: %v", err)
			}
			m.Allow = append(m.Allow, list...)
		case "accept_forwarded":
			if m.AcceptForwarded {
				return d.Err("metrics_endpoint: accept_forwarded given twice")
			}
			if d.NextArg() {
				return d.Errf("metrics_endpoint: accept_forwarded takes no argument (it is on when present); unexpected %q", d.Val())
			}
			if d.NextBlock(d.Nesting()) {
				return d.Err("metrics_endpoint: accept_forwarded takes no block")
			}
			m.AcceptForwarded = true
		default:
			return d.Errf("metrics_endpoint: unknown subdirective %q (expected allow or accept_forwarded)", sub)
		}
	}
	return nil
}

func parseMetricsEndpointDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(MetricsEndpoint)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*MetricsEndpoint)(nil)
)
