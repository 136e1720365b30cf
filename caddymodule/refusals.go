package routemetrics

import (
	"net/http"

	"go.uber.org/zap"
)

// metrics_endpoint_refused_total{reason} makes refusals visible to the
// operator: a probe through a tunnel, a misrouted scrape or a proxy that
// became untrusted shows as a growing reason, and Prometheus can alert on
// it. Every reason exists from provision on (at 0), so rate() and absent()
// work before the first refusal.
// (ownRefused in own_families.go.)

// refusalCounters holds one series per reason, resolved at provision.
type refusalCounters [numRefusals]*series

func newRefusalCounters(reg *lmRegistry) (*refusalCounters, error) {
	f, err := ownRefused.register(reg, "")
	if err != nil {
		return nil, err
	}
	var c refusalCounters
	for r := admitted + 1; r < numRefusals; r++ {
		if c[r], err = f.series([]string{r.String()}); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// refuse answers 403, counts the refusal and logs it at debug level with
// the reason, the peer and the deciding header's name: never a header
// value, which the client may have written. The body is the same whatever
// the reason, so it tells a prober nothing.
func (m *MetricsEndpoint) refuse(w http.ResponseWriter, r *http.Request, d decision) error {
	// An endpoint built without Provision (tests) still refuses; it only
	// has nothing to count or log with.
	if m.refused != nil {
		m.refused[d.refusal].counterAdd(1)
	}
	if m.logger != nil {
		if ce := m.logger.Check(zap.DebugLevel, "refused"); ce != nil {
			fields := []zap.Field{zap.String("reason", d.refusal.String()), zap.String("peer", peerHost(r))}
			if d.header != "" {
				fields = append(fields, zap.String("header", d.header))
			}
			ce.Write(fields...)
		}
	}
	return plainError(w, http.StatusForbidden, refusedBody)
}

// refusedBody is the one answer every refusal gets.
const refusedBody = "403 Forbidden: metrics are served to internal clients only\n"
