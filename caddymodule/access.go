package routemetrics

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// internalPrefixes are the clients metrics_endpoint serves without any
// `allow`: loopback, RFC 1918, IPv6 unique-local and link-local. Metrics
// reveal routes, traffic and error rates, so the public gets 403 unless the
// operator opts in.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// parseAllow parses CIDRs (or single addresses) given to `allow`.
func parseAllow(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("allow: %q is not a CIDR like 203.0.113.0/24 or 2001:db8::/32", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allow: %q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// The rule metrics_endpoint applies to every request, before anything else
// (whatever the method or the format asked for).
//
// The TCP peer is only the last hop. A tunnel connector (Cloudflare
// Tunnel), a load balancer, nginx or a second Caddy in front of this one
// connects from loopback or a private address, so judged by the peer every
// public client of that proxy would get the metrics. Hence:
//
//   - the peer is one of the server's trusted_proxies (Caddy's
//     trusted_proxy var): Caddy's client_ip must be allowed, and so must
//     every address the forwarding headers name (the whole X-Forwarded-For
//     chain, each Forwarded for=, X-Real-IP, Cf-Connecting-Ip, ...). Without
//     trusted_proxies_strict Caddy takes the leftmost X-Forwarded-For
//     address, which the client wrote itself: a public client sending
//     "X-Forwarded-For: 10.0.0.1" to the trusted proxy, which appends the
//     real address, must not pass. A value that is not an address refuses
//     the request;
//   - otherwise any forwarding header, whatever its value (empty too),
//     refuses the request whatever the peer: something in between hides
//     the client. accept_forwarded lets the peer decide instead;
//   - otherwise the peer must be allowed.

// accessRule is one metrics_endpoint's rule, fixed at provision time.
type accessRule struct {
	allow           []netip.Prefix // on top of internalPrefixes
	acceptForwarded bool
}

// refusal says why a request was refused. The names are the reason label
// of metrics_endpoint_refused_total: a fixed set, never request data.
type refusal uint8

const (
	admitted refusal = iota
	// The client (the peer, or client_ip behind a trusted proxy) is outside
	// loopback, the private ranges and allow, or not an IP address.
	refusedAddress
	// Forwarding headers from a peer that is not a trusted proxy.
	refusedForwarded
	// A trusted proxy's headers name an address that is not allowed or
	// does not parse.
	refusedForwardedChain
	numRefusals
)

var refusalReasons = [numRefusals]string{
	refusedAddress:        "address",
	refusedForwarded:      "forwarded",
	refusedForwardedChain: "forwarded_chain",
}

func (r refusal) String() string { return refusalReasons[r] }

// decision is the rule's answer: admitted, or a refusal and the forwarding
// header (its canonical name, from the tables below or the server's
// client_ip_headers) that decided it.
type decision struct {
	refusal refusal
	header  string
}

// addressHeaders name the client: RFC 7239 Forwarded (its for= parameters)
// and the de-facto headers holding one address or a comma-separated list.
var addressHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Real-Ip", "Cf-Connecting-Ip", "True-Client-Ip",
	"Fastly-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
}

// hopHeaders name no client but show that a proxy was in between
// (Cf-Ray: Cloudflare's request ID, which its tunnel connector passes on).
var hopHeaders = []string{"Cf-Ray", "Via", "X-Forwarded-Host", "X-Forwarded-Proto"}

// decide applies the rule to r.
func (a *accessRule) decide(r *http.Request) decision {
	h := canonicalHeader(r.Header)
	extra := serverClientIPHeaders(r)
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !trusted && !a.acceptForwarded {
		if name := forwardingSign(h, extra); name != "" {
			return decision{refusal: refusedForwarded, header: name}
		}
	}
	if c, ok := clientAddr(r); !ok || !a.allowed(c) {
		return decision{refusal: refusedAddress}
	}
	if trusted {
		if name := a.disallowedInChain(h, extra); name != "" {
			return decision{refusal: refusedForwardedChain, header: name}
		}
	}
	return decision{}
}

func (a *accessRule) allowed(addr netip.Addr) bool { return addrAllowed(addr, a.allow) }

// forwardingSign returns the first forwarding header h carries, or "".
func forwardingSign(h http.Header, extra []string) string {
	for _, list := range [][]string{addressHeaders, hopHeaders, extra} {
		for _, name := range list {
			if _, ok := h[name]; ok {
				return name
			}
		}
	}
	return ""
}

// disallowedInChain returns the first address header of h with a value
// that names an address a does not allow or that is not an address.
func (a *accessRule) disallowedInChain(h http.Header, extra []string) string {
	for _, list := range [][]string{addressHeaders, extra} {
		for _, name := range list {
			parse := everyListedAddr
			if name == "Forwarded" {
				parse = everyForwardedFor
			}
			for _, v := range h[name] {
				if !parse(v, a.allowed) {
					return name
				}
			}
		}
	}
	return ""
}

// everyListedAddr reports whether v is a comma-separated list of addresses
// (optionally with a port, as some proxies write them) all of which ok
// accepts. An empty list or element is not an address.
func everyListedAddr(v string, ok func(netip.Addr) bool) bool {
	for elem := range strings.SplitSeq(v, ",") {
		addr, parsed := parseNodeAddr(strings.TrimSpace(elem))
		if !parsed || !ok(addr) {
			return false
		}
	}
	return true
}

// everyForwardedFor reports whether v is a well-formed RFC 7239 Forwarded
// value whose every element names its client in a for= parameter that is
// an address ok accepts. "unknown", obfuscated identifiers ("_hidden"), an
// element without for= and a value with no element at all hide the client
// and fail.
func everyForwardedFor(v string, ok func(netip.Addr) bool) bool {
	// The grammar is the one of Server-Timing: tokens, "=" and quoted
	// strings, elements split by "," and pairs by ";".
	sc := stScanner{s: v}
	elements := 0
	for {
		sc.ows()
		if sc.i >= len(sc.s) {
			return elements > 0
		}
		if sc.s[sc.i] == ',' { // empty list element (RFC 9110 5.6.1)
			sc.i++
			continue
		}
		fors := 0
		for {
			sc.ows()
			if sc.i < len(sc.s) && sc.s[sc.i] != ';' && sc.s[sc.i] != ',' {
				name, val, escaped, good := sc.param()
				if !good {
					return false
				}
				if asciiEqualFold(name, "for") {
					addr, parsed := parseNodeAddr(val)
					if escaped || !parsed || !ok(addr) {
						return false
					}
					fors++
				}
				sc.ows()
			}
			if sc.i >= len(sc.s) || sc.s[sc.i] == ',' {
				break
			}
			if sc.s[sc.i] != ';' {
				return false
			}
			sc.i++
		}
		if fors != 1 { // RFC 7239 4: a parameter occurs at most once per element
			return false
		}
		elements++
		if sc.i < len(sc.s) {
			sc.i++ // the ','
		}
	}
}

// parseNodeAddr reads an address as proxies write it: 192.0.2.1,
// 192.0.2.1:8080, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:8080, with
// an IPv6 zone dropped and an IPv4-mapped address unmapped.
func parseNodeAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	if rest, ok := strings.CutPrefix(s, "["); ok {
		if inner, after, ok := strings.Cut(rest, "]"); ok && after == "" {
			if a, err := netip.ParseAddr(inner); err == nil && a.Is6() {
				return a.WithZone("").Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

// canonicalHeader returns h with every field name in canonical form (h
// itself when it already is, as net/http delivers it): "x-forwarded-FOR"
// is X-Forwarded-For.
func canonicalHeader(h http.Header) http.Header {
	for k := range h {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			c := make(http.Header, len(h))
			for k, v := range h {
				ck := textproto.CanonicalMIMEHeaderKey(k)
				c[ck] = append(c[ck], v...)
			}
			return c
		}
	}
	return h
}

// serverClientIPHeaders returns the server's client_ip_headers in
// canonical form: wherever Caddy reads a client address, so does the rule.
func serverClientIPHeaders(r *http.Request) []string {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return nil
	}
	out := make([]string, 0, len(srv.ClientIPHeaders))
	for _, name := range srv.ClientIPHeaders {
		out = append(out, textproto.CanonicalMIMEHeaderKey(name))
	}
	return out
}

// clientAddr is the client's address as Caddy determined it, honouring the
// server's trusted_proxies (the client_ip var); outside a Caddy server it
// falls back to the connection's peer.
func clientAddr(r *http.Request) (netip.Addr, bool) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip = peerHost(r)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// peerHost is the host part of the connection's peer address.
func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func addrAllowed(a netip.Addr, extra []netip.Prefix) bool {
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range extra {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
