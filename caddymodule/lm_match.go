package routemetrics

// The route template matcher of libmetrics (lm_matcher_*), kept beside
// lm.go as the package's second and last file that imports "C": the
// matcher is its own piece of the C API and of this package.

/*
#cgo noescape lmgo_match
#cgo nocallback lmgo_match
#include <stdlib.h>
#include <libmetrics.h>
// The per-request call takes the path's bytes as a pointer and a length
// (not an lm_str holding a Go pointer) so cgo checks the one pointer, which
// C does not keep.
static inline size_t lmgo_match(const lm_matcher *m, const char *p, size_t n) {
	return lm_matcher_match(m, (lm_str){p, n});
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// matcher is a compiled, immutable template set. Its C memory is freed by
// the garbage collector once nothing refers to it, never by Cleanup: a
// request of an old configuration may still be matching after Caddy
// cleaned that configuration up.
type matcher struct {
	p *C.lm_matcher
}

// matchNone is lm_matcher_match's "no template matched".
const matchNone = -1

// templateError is a template the C library refused: its index and the
// library's sentence, which quotes it.
type templateError struct {
	index int
	msg   string
}

func (e *templateError) Error() string { return e.msg }

// newMatcher compiles templates; a refused one comes back as a
// *templateError naming its index.
func newMatcher(templates []string) (*matcher, error) {
	if len(templates) == 0 {
		return nil, fmt.Errorf("no templates")
	}
	strs := (*C.lm_str)(C.malloc(C.size_t(len(templates)) * C.size_t(unsafe.Sizeof(C.lm_str{}))))
	if strs == nil {
		return nil, fmt.Errorf("out of memory")
	}
	defer C.free(unsafe.Pointer(strs))
	cs := newCStrings(templates)
	defer cs.free()
	sl := unsafe.Slice(strs, len(templates))
	for i := range sl {
		sl[i].ptr = cs[i]
		sl[i].len = C.size_t(len(templates[i]))
	}
	var e C.lm_error
	var bad C.size_t
	p := C.lm_matcher_new(strs, C.size_t(len(templates)), &bad, &e)
	if p == nil {
		msg := C.GoString(&e.message[0])
		if int(bad) >= 0 && int(bad) < len(templates) {
			return nil, &templateError{index: int(bad), msg: msg}
		}
		return nil, fmt.Errorf("libmetrics: %s", msg)
	}
	m := &matcher{p: p}
	runtime.AddCleanup(m, func(p *C.lm_matcher) { C.lm_matcher_free(p) }, p)
	return m, nil
}

// match resolves a path to a template index, or matchNone: one crossing,
// no allocation.
func (m *matcher) match(path string) int {
	if len(path) == 0 {
		return matchNone
	}
	i := C.lmgo_match(m.p, (*C.char)(unsafe.Pointer(unsafe.StringData(path))), C.size_t(len(path)))
	runtime.KeepAlive(m)
	if i == ^C.size_t(0) { // LM_MATCH_NONE
		return matchNone
	}
	return int(i)
}
