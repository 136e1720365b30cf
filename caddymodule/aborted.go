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

// (ownAborted in own_families.go.)

// registerAborted registers the aborted-response counter of h (same shape
// on every reload, so libmetrics returns the same family).
func registerAborted(reg *lmRegistry, h *httpFamilies) error {
	f, err := ownAborted.register(reg, h.prefix)
	if err != nil {
		return err
	}
	h.aborted = f
	return nil
}

// countAborted counts the request's response, sent with status, as
// aborted, under the route and namespace it was recorded in, unless the
// status itself already said it failed. A rare path: one extra crossing.
func (t *tracker) countAborted(status int) {
	if t.upgraded || status >= 500 {
		return
	}
	rt := t.recordRoute()
	if s := rt.endpointSeries(&rt.ext.aborted, t.http.aborted); s != nil {
		s.counterAdd(1)
	}
}
