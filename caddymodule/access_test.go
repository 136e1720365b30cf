package routemetrics

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// accessCase is one request as a Caddy server hands it to metrics_endpoint:
// the peer, the headers exactly as keyed in the map (non-canonical keys
// included), and the vars Caddy's server sets (trusted_proxy, client_ip).
type accessCase struct {
	name     string
	peer     string
	trusted  bool
	clientIP string              // Caddy's client_ip; "" means the peer
	headers  map[string][]string // keys used as given
	ipHdrs   []string            // the server's client_ip_headers, if any
	rule     accessRule
	want     refusal
	header   string // the deciding header, for refusals that have one
}

func (c accessCase) request() *http.Request {
	r := caddyRequest("GET", "/metrics")
	r.RemoteAddr = c.peer
	r.Header = http.Header{}
	for k, v := range c.headers {
		r.Header[k] = v
	}
	ip := c.clientIP
	if ip == "" {
		ip = peerHost(r)
	}
	caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, c.trusted)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
	if c.ipHdrs != nil {
		srv := &caddyhttp.Server{ClientIPHeaders: c.ipHdrs}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
	}
	return r
}

func runAccessCases(t *testing.T, cases []accessCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.rule.decide(c.request())
			if d.refusal != c.want || (c.want != admitted && d.header != c.header) {
				t.Errorf("decide = (%q, header %q), want (%q, header %q)", d.refusal, d.header, c.want, c.header)
			}
		})
	}
}

func hdr(kv ...string) map[string][]string {
	m := map[string][]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = append(m[kv[i]], kv[i+1])
	}
	return m
}

// mixedCase turns X-Forwarded-For into x-fOrWaRdEd-fOr.
func mixedCase(s string) string {
	b := []byte(s)
	for i := range b {
		switch c := b[i]; {
		case i%2 == 0 && c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case i%2 == 1 && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Every forwarding header, whatever its value and spelling, refuses a
// request from a peer that is not a trusted proxy, private peers (the
// tunnel connector on loopback) and public ones alike.
func TestAccessForwardedFromUntrustedPeer(t *testing.T) {
	var cases []accessCase
	for _, name := range append(append([]string{}, addressHeaders...), hopHeaders...) {
		for _, peer := range []string{"127.0.0.1:40000", "[::1]:40000", "10.9.8.7:1", "198.51.100.2:1"} {
			for label, h := range map[string]map[string][]string{
				"public value":  hdr(name, "198.51.100.2"),
				"private value": hdr(name, "10.0.0.1"),
				"empty":         hdr(name, ""),
				"repeated":      hdr(name, "10.0.0.1", name, "127.0.0.1"),
				"mixed case":    hdr(mixedCase(name), "127.0.0.1"),
				"lower case":    hdr(toLower(name), "127.0.0.1"),
				"with others":   hdr("Accept", "text/plain", name, "x", "User-Agent", "curl"),
				"garbage":       hdr(name, "\x01not an address"),
			} {
				cases = append(cases, accessCase{name: fmt.Sprintf("%s/%s/%s", name, peer, label),
					peer: peer, headers: h, want: refusedForwarded, header: name})
			}
		}
	}
	runAccessCases(t, cases)
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestAccessDirectClients(t *testing.T) {
	runAccessCases(t, []accessCase{
		{name: "loopback", peer: "127.0.0.1:1", want: admitted},
		{name: "private", peer: "10.254.77.2:1", want: admitted},
		{name: "v6 ula", peer: "[fd00::2]:1", want: admitted},
		{name: "public", peer: "198.51.100.2:1", want: refusedAddress},
		{name: "public v6", peer: "[2001:db8::2]:1", want: refusedAddress},
		{name: "unix socket untrusted", peer: "@", want: refusedAddress},
		{name: "unrelated headers", peer: "10.0.0.1:1",
			headers: hdr("Accept", "text/html", "X-Forwarded", "x", "Client-Ip", "1.2.3.4", "Forwarded-For", "1.2.3.4"),
			want:    admitted},
		// The attack the issue names: a direct private client forging the
		// address of another internal host.
		{name: "private forging XFF", peer: "10.254.77.2:1", headers: hdr("X-Forwarded-For", "10.0.0.1"),
			want: refusedForwarded, header: "X-Forwarded-For"},
		{name: "public forging XFF", peer: "198.51.100.2:1", headers: hdr("X-Forwarded-For", "127.0.0.1"),
			want: refusedForwarded, header: "X-Forwarded-For"},
		{name: "allow list", peer: "203.0.113.9:1", rule: accessRule{allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			want: admitted},
		// client_ip_headers the operator configured are signs as well.
		{name: "custom client_ip_headers", peer: "127.0.0.1:1", ipHdrs: []string{"x-custom-client"},
			headers: hdr("X-Custom-Client", "10.0.0.1"), want: refusedForwarded, header: "X-Custom-Client"},
	})
}

func TestAccessAcceptForwarded(t *testing.T) {
	optOut := accessRule{acceptForwarded: true}
	runAccessCases(t, []accessCase{
		{name: "proxy on loopback", peer: "127.0.0.1:1", rule: optOut, headers: hdr("X-Forwarded-For", "198.51.100.2"),
			want: admitted},
		{name: "every header", peer: "127.0.0.1:1", rule: optOut,
			headers: hdr("Forwarded", "for=198.51.100.2", "Cf-Connecting-Ip", "198.51.100.2", "Via", "1.1 x"), want: admitted},
		// The headers are ignored, not believed.
		{name: "public peer claiming loopback", peer: "198.51.100.2:1", rule: optOut,
			headers: hdr("X-Forwarded-For", "127.0.0.1", "X-Real-Ip", "127.0.0.1"), want: refusedAddress},
		// A trusted proxy's clients are still checked: the opt-out only
		// concerns proxies Caddy cannot see through.
		{name: "trusted chain forgery", peer: "127.0.0.1:1", trusted: true, clientIP: "10.0.0.1", rule: optOut,
			headers: hdr("X-Forwarded-For", "10.0.0.1, 198.51.100.2"), want: refusedForwardedChain, header: "X-Forwarded-For"},
	})
}

// Behind a trusted proxy, client_ip decides and every address the
// forwarding headers name must be allowed too. clientIP is what Caddy's
// non-strict default computes: the leftmost valid X-Forwarded-For address.
func TestAccessTrustedProxy(t *testing.T) {
	tp := func(name, clientIP string, h map[string][]string, want refusal, header string) accessCase {
		return accessCase{name: name, peer: "127.0.0.1:5000", trusted: true, clientIP: clientIP, headers: h,
			want: want, header: header}
	}
	cases := []accessCase{
		tp("private client", "10.254.77.2", hdr("X-Forwarded-For", "10.254.77.2"), admitted, ""),
		tp("private chain with ports", "10.0.0.1", hdr("X-Forwarded-For", "10.0.0.1:5555, [fd00::1]:80, 127.0.0.1"), admitted, ""),
		tp("mapped and zoned", "10.0.0.1", hdr("X-Forwarded-For", "::ffff:10.0.0.1, fe80::1%eth0, [::1]"), admitted, ""),
		tp("no headers", "", nil, admitted, ""),
		tp("hop headers only", "", hdr("Via", "1.1 Caddy", "Cf-Ray", "abc-LHR", "X-Forwarded-Proto", "https"), admitted, ""),
		tp("public client", "198.51.100.2", hdr("X-Forwarded-For", "198.51.100.2"), refusedAddress, ""),
		// The proxy appends the real address to what the client sent.
		tp("forged XFF appended to", "10.0.0.1", hdr("X-Forwarded-For", "10.0.0.1, 198.51.100.2"),
			refusedForwardedChain, "X-Forwarded-For"),
		tp("forged XFF in a second line", "10.0.0.1", hdr("X-Forwarded-For", "10.0.0.1", "X-Forwarded-For", "198.51.100.2"),
			refusedForwardedChain, "X-Forwarded-For"),
		tp("forged XFF mixed case", "10.0.0.1", hdr("x-forwarded-for", "10.0.0.1, 198.51.100.2"),
			refusedForwardedChain, "X-Forwarded-For"),
		tp("garbage before a private address", "10.0.0.1", hdr("X-Forwarded-For", "nonsense, 10.0.0.1"),
			refusedForwardedChain, "X-Forwarded-For"),
		tp("empty XFF", "", hdr("X-Forwarded-For", ""), refusedForwardedChain, "X-Forwarded-For"),
		tp("empty element", "10.0.0.1", hdr("X-Forwarded-For", "10.0.0.1,,10.0.0.2"), refusedForwardedChain, "X-Forwarded-For"),
		tp("bracketed v4", "", hdr("X-Forwarded-For", "[10.0.0.1]"), refusedForwardedChain, "X-Forwarded-For"),
		tp("port out of range", "", hdr("X-Forwarded-For", "10.0.0.1:99999"), refusedForwardedChain, "X-Forwarded-For"),
		// A tunnel connector that sets Cf-Connecting-Ip to the real client
		// and passes the client's X-Forwarded-For on.
		tp("cloudflared style", "10.0.0.1", hdr("X-Forwarded-For", "10.0.0.1", "Cf-Connecting-Ip", "198.51.100.2"),
			refusedForwardedChain, "Cf-Connecting-Ip"),
		tp("public client without allow", "203.0.113.5", hdr("X-Forwarded-For", "203.0.113.5"), refusedAddress, ""),
		tp("custom header public", "", hdr("X-Custom-Client", "198.51.100.2"), admitted, ""),
	}
	// Every address header: a private value passes, a public, empty or
	// unparsable one (or a public one among private ones) does not.
	for _, name := range addressHeaders {
		v := func(addr string) string {
			if name == "Forwarded" {
				return "for=" + addr
			}
			return addr
		}
		cases = append(cases,
			tp(name+"/private", "", hdr(name, v("10.0.0.1")), admitted, ""),
			tp(name+"/public", "", hdr(name, v("198.51.100.2")), refusedForwardedChain, name),
			tp(name+"/empty", "", hdr(name, ""), refusedForwardedChain, name),
			tp(name+"/unparsable", "", hdr(name, v("localhost")), refusedForwardedChain, name),
			tp(name+"/repeated", "", hdr(name, v("10.0.0.1"), name, v("198.51.100.2")), refusedForwardedChain, name),
			tp(name+"/mixed case", "", hdr(mixedCase(name), v("198.51.100.2")), refusedForwardedChain, name),
		)
	}
	runAccessCases(t, cases)

	withAllow := accessRule{allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	custom := accessCase{name: "custom client_ip_headers", peer: "127.0.0.1:1", trusted: true, ipHdrs: []string{"X-Custom-Client"},
		headers: hdr("X-Custom-Client", "198.51.100.2"), want: refusedForwardedChain, header: "X-Custom-Client"}
	runAccessCases(t, []accessCase{
		{name: "allow list", peer: "127.0.0.1:1", trusted: true, clientIP: "203.0.113.5", rule: withAllow,
			headers: hdr("X-Forwarded-For", "203.0.113.5, 10.0.0.3"), want: admitted},
		custom,
		{name: "unix socket, no headers", peer: "@", trusted: true, clientIP: "@", want: refusedAddress},
		{name: "trusted public proxy", peer: "203.0.113.1:1", trusted: true, clientIP: "10.0.0.1",
			headers: hdr("X-Forwarded-For", "10.0.0.1"), want: admitted},
	})
}

func TestEveryForwardedFor(t *testing.T) {
	private := func(a netip.Addr) bool { return addrAllowed(a, nil) }
	for v, want := range map[string]bool{
		"for=10.0.0.1":                             true,
		"For=10.0.0.1":                             true,
		"FOR=\"10.0.0.1\"":                         true,
		"for=\"10.0.0.1:4711\"":                    true,
		"for=\"[fd00::17]\"":                       true,
		"for=\"[fd00::17]:4711\"":                  true,
		"for=10.0.0.1;proto=http;by=203.0.113.43":  true,
		"proto=http; for=10.0.0.1":                 true,
		"for=10.0.0.1, for=192.168.1.1":            true,
		"for=10.0.0.1 , ,for=127.0.0.1;":           true,
		"for=10.0.0.1;;host=x":                     true,
		"for=198.51.100.2":                         false,
		"for=10.0.0.1, for=198.51.100.2":           false,
		"for=\"[2001:db8::1]\"":                    false,
		"for=unknown":                              false,
		"for=_hidden":                              false,
		"for=\"_gazonk\"":                          false,
		"proto=https":                              false, // names no client
		"for=10.0.0.1, proto=https":                false,
		"for=10.0.0.1;for=10.0.0.2":                false,
		"for=10.0.0.1:4711":                        false, // ':' needs quotes
		"for=\"10.0.0.1":                           false,
		"for=\"10\\.0.0.1\"":                       false,
		"for=":                                     false,
		"=10.0.0.1":                                false,
		"for 10.0.0.1":                             false,
		"":                                         false,
		" , ":                                      false,
		"for=10.0.0.1 junk":                        false,
		"for=10.0.0.1;proto=\"http, for=1.2.3.4\"": true, // the comma is quoted
		"for=10.0.0.1;proto=\"http\", for=1.2.3.4": false,
		"for=10.0.0.1, for=\"[::ffff:198.51.100.2]\"": false,
	} {
		if got := everyForwardedFor(v, private); got != want {
			t.Errorf("everyForwardedFor(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestCanonicalHeaderMergesSpellings(t *testing.T) {
	h := canonicalHeader(http.Header{"x-forwarded-for": {"a"}, "X-Forwarded-For": {"b"}, "X-FORWARDED-FOR": {"c"}})
	if got := len(h["X-Forwarded-For"]); got != 3 || len(h) != 1 {
		t.Errorf("canonicalHeader: %v", h)
	}
	same := http.Header{"Accept": {"x"}}
	canonicalHeader(same)["X-Probe"] = nil
	if _, ok := same["X-Probe"]; !ok {
		t.Error("an already canonical header was copied")
	}
}
