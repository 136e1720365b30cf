package routemetrics

// methodOf maps a request method to its label index with the semantics of
// lm_method_parse (exact, case-sensitive; anything else is OTHER) but in Go,
// so the request path pays for no extra crossing and clients cannot grow
// the method label set.
func methodOf(m string) methodIndex {
	switch m {
	case "GET":
		return methodGet
	case "HEAD":
		return methodHead
	case "POST":
		return methodPost
	case "PUT":
		return methodPut
	case "DELETE":
		return methodDelete
	case "CONNECT":
		return methodConnect
	case "OPTIONS":
		return methodOptions
	case "TRACE":
		return methodTrace
	case "PATCH":
		return methodPatch
	}
	return methodOther
}
