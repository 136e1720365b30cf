package routemetrics

// Aborted responses: the handler chain panicked or returned an error after
// the final response header had gone out. reverse_proxy does this with
// panic(http.ErrAbortHandler) when the upstream dies in the middle of the
// body. The request is recorded with the status the client saw (README:
// Status), but the client then got a cut body, so such a response is also
// counted apart, per namespace and endpoint:
//
//	<namespace>http_responses_aborted_total{endpoint}
//
// so an availability objective can count it as the failure it was:
// failed = 5xx + aborted, exactly, because a response whose status was
// already a 5xx is not counted again here (it failed by its status).
// Upgraded requests are not counted here: their response was the upgrade.

const (
	abortedSuffix = "http_responses_aborted_total"
	abortedHelp   = "HTTP responses with a status below 500 cut off after their status line was sent (the handler chain failed mid-response, e.g. the upstream died mid-body), by endpoint; also counted in http_requests_total with that status. Failed requests = 5xx + this."
)

// registerAborted registers the aborted-response counter of h (same shape
// on every reload, so libmetrics returns the same family).
func registerAborted(reg *lmRegistry, h *httpFamilies) error {
	f, err := reg.registerHTTPCounter(h.prefix+abortedSuffix, abortedHelp, []string{"endpoint"})
	if err != nil {
		return err
	}
	h.aborted = f
	return nil
}

// abortedIn returns the route's series in h's aborted-response counter,
// resolving it on the route's first aborted response; nil if libmetrics
// refused.
func (rt *route) abortedIn(h *httpFamilies) *series {
	if s := rt.ext.aborted.Load(); s != nil {
		return s
	}
	rt.ext.mu.Lock()
	defer rt.ext.mu.Unlock()
	if s := rt.ext.aborted.Load(); s != nil {
		return s
	}
	if h.aborted == nil {
		return nil
	}
	s, err := h.aborted.series([]string{rt.name})
	if err != nil {
		return nil
	}
	rt.ext.aborted.Store(s)
	return s
}

// countAborted counts the request's response, sent with status, as
// aborted, under the route and namespace it was recorded in, unless the
// status itself already said it failed. A rare path: one extra crossing.
func (t *tracker) countAborted(status int) {
	if t.upgraded || status >= 500 {
		return
	}
	if s := t.recordRoute().abortedIn(t.http); s != nil {
		s.counterAdd(1)
	}
}
