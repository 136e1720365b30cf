package routemetrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
)

// Route templates (route_metrics `openapi` and `template`): the endpoint
// label of a request becomes the application's own route template
// ("/v1/customers/{customer_id}") that its path matches, so a FastAPI app
// gets one series per route instead of one per Caddyfile block. Matching is
// libmetrics' lm_matcher (Starlette's syntax and semantics, documented in
// libmetrics.h); this file reads the templates and checks their bounds.

// maxTemplates bounds the templates of one route_metrics (spec and inline
// together). Each is a route of the namespace, whose table holds 1,000
// (libmetrics' max_routes), and costs up to methods x statuses series in
// each family.
const maxTemplates = 500

// maxTemplateBytes is libmetrics' default max_label_value_len: a longer
// template would be cut in the endpoint label and could collide with
// another.
const maxTemplateBytes = 256

// templateSource is a template and where it was declared, for errors:
// "openapi.json:12:5", "Caddyfile:30" or "templates[2]".
type templateSource struct {
	path  string
	where string
}

// templateSet is the compiled templates of one route_metrics: label values
// index-aligned with the matcher's answers.
type templateSet struct {
	templates []string
	m         *matcher
}

// loadOpenAPI reads the paths of an OpenAPI 3.x document, JSON or YAML.
func loadOpenAPI(file string) ([]templateSource, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if looksLikeJSON(data) {
		return openAPIFromJSON(file, data)
	}
	return openAPIFromYAML(file, data)
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && t[0] == '{'
}

// lineCol turns a byte offset into a 1-based line and column (in bytes).
func lineCol(data []byte, off int64) (int, int) {
	off = max(0, min(off, int64(len(data))))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// openAPIFromJSON checks the document with encoding/json (whose errors
// carry a byte offset, reported as line:column) and walks its tokens for
// the position of every key of "paths".
func openAPIFromJSON(file string, data []byte) ([]templateSource, error) {
	var doc struct {
		OpenAPI any                        `json:"openapi"`
		Swagger any                        `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			l, c := lineCol(data, se.Offset-1) // Offset is past the bad byte
			return nil, fmt.Errorf("openapi %s:%d:%d: %v", file, l, c, se)
		case errors.As(err, &te):
			l, c := lineCol(data, te.Offset-1)
			return nil, fmt.Errorf("openapi %s:%d:%d: %s must be %s, not %s", file, l, c, jsonField(te), jsonWant(te), te.Value)
		}
		return nil, fmt.Errorf("openapi %s: %v", file, err)
	}
	if err := checkOpenAPIVersion(file, doc.OpenAPI, doc.Swagger); err != nil {
		return nil, err
	}
	return jsonPathKeys(file, data), nil
}

// jsonPathKeys lists the keys of the top-level "paths" object of a
// document encoding/json already accepted, each with its line:column.
func jsonPathKeys(file string, data []byte) []templateSource {
	dec := json.NewDecoder(bytes.NewReader(data))
	skip := func() { var raw json.RawMessage; _ = dec.Decode(&raw) }
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil
	}
	var out []templateSource
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return out
		}
		if key != "paths" {
			skip()
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			continue // null: no paths
		}
		for dec.More() {
			before := dec.InputOffset()
			k, err := dec.Token()
			if err != nil {
				return out
			}
			// The key starts at the first quote after the previous token.
			l, c := lineCol(data, before+int64(bytes.IndexByte(data[before:], '"')))
			out = append(out, templateSource{path: k.(string), where: fmt.Sprintf("%s:%d:%d", file, l, c)})
			skip()
		}
		_, _ = dec.Token() // the closing brace
	}
	return out
}

func jsonField(te *json.UnmarshalTypeError) string {
	if te.Field == "" {
		return "the document"
	}
	return fmt.Sprintf("%q", te.Field)
}

func jsonWant(te *json.UnmarshalTypeError) string {
	if te.Type == nil {
		return "another type"
	}
	switch te.Type.Kind().String() {
	case "map", "struct":
		return "an object"
	}
	return te.Type.String()
}

// checkOpenAPIVersion accepts OpenAPI 3.x; Swagger 2.0 (basePath, other
// rules) and documents that say neither are refused.
func checkOpenAPIVersion(file string, openapi, swagger any) error {
	if s, ok := openapi.(string); ok && strings.HasPrefix(s, "3.") {
		return nil
	}
	if swagger != nil {
		return fmt.Errorf("openapi %s: a Swagger %v document; only OpenAPI 3.x is supported", file, swagger)
	}
	if openapi == nil {
		return fmt.Errorf("openapi %s: no \"openapi\" version field; not an OpenAPI 3.x document", file)
	}
	return fmt.Errorf("openapi %s: version %v; only OpenAPI 3.x is supported", file, openapi)
}

// openAPIFromYAML reads a YAML document with yaml.v3, whose nodes carry
// line and column.
func openAPIFromYAML(file string, data []byte) ([]templateSource, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("openapi %s: %v", file, err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("openapi %s: not an OpenAPI document (no top-level mapping)", file)
	}
	top := root.Content[0]
	var openapi, swagger any
	var paths *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "openapi":
			openapi = v.Value
		case "swagger":
			swagger = v.Value
		case "paths":
			paths = v
		}
	}
	if err := checkOpenAPIVersion(file, openapi, swagger); err != nil {
		return nil, err
	}
	if paths == nil {
		return nil, nil
	}
	if paths.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("openapi %s:%d:%d: \"paths\" must be a mapping", file, paths.Line, paths.Column)
	}
	out := make([]templateSource, 0, len(paths.Content)/2)
	for i := 0; i+1 < len(paths.Content); i += 2 {
		k := paths.Content[i]
		out = append(out, templateSource{path: k.Value, where: fmt.Sprintf("%s:%d:%d", file, k.Line, k.Column)})
	}
	return out, nil
}

// convertorRE finds Starlette's {name:convertor} parameters.
var convertorRE = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*):[a-zA-Z_][a-zA-Z0-9_]*\}`)

// pathFormat is a template without its convertors, as FastAPI writes the
// route in /openapi.json: "/files/{file_path:path}" -> "/files/{file_path}".
func pathFormat(t string) string { return convertorRE.ReplaceAllString(t, "{$1}") }

// mergeTemplates is the spec's paths plus the inline templates; an inline
// template whose path format equals a spec path replaces it (the spec
// cannot say "{file_path:path}", FastAPI writes it "{file_path}").
func mergeTemplates(spec, inline []templateSource) []templateSource {
	replaced := make(map[string]bool, len(inline))
	for _, t := range inline {
		replaced[pathFormat(t.path)] = true
	}
	out := make([]templateSource, 0, len(spec)+len(inline))
	for _, t := range spec {
		if !replaced[t.path] {
			out = append(out, t)
		}
	}
	return append(out, inline...)
}

// compileTemplates checks the bounds and compiles srcs; errors name where
// the offending template was declared (setAt: where the set was, for the
// count).
func compileTemplates(srcs []templateSource, setAt string) (*templateSet, error) {
	if len(srcs) > maxTemplates {
		return nil, fmt.Errorf("%s: %d templates; at most %d per route_metrics (split the routes over several handle blocks, each with its own route_metrics)", setAt, len(srcs), maxTemplates)
	}
	ts := &templateSet{templates: make([]string, len(srcs))}
	for i, s := range srcs {
		if !utf8.ValidString(s.path) {
			return nil, fmt.Errorf("%s: template %q is not valid UTF-8", s.where, s.path)
		}
		if len(s.path) > maxTemplateBytes {
			return nil, fmt.Errorf("%s: template %.40q... is %d bytes; at most %d (the endpoint label's limit)", s.where, s.path, len(s.path), maxTemplateBytes)
		}
		ts.templates[i] = s.path
	}
	m, err := newMatcher(ts.templates)
	if err != nil {
		var te *templateError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", srcs[te.index].where, te.msg)
		}
		return nil, err
	}
	ts.m = m
	return ts, nil
}

// templateSources assembles a handler's templates: its spec's paths (read
// now) and its inline templates, with where each was declared (inlineAt
// may be nil: JSON configuration has no lines).
func templateSources(openapi string, inline []string, inlineAt []string) ([]templateSource, error) {
	var spec []templateSource
	if openapi != "" {
		var err error
		if spec, err = loadOpenAPI(openapi); err != nil {
			return nil, err
		}
		if len(spec) == 0 && len(inline) == 0 {
			return nil, fmt.Errorf("openapi %s: the document has no paths", openapi)
		}
	}
	in := make([]templateSource, len(inline))
	for i, t := range inline {
		where := fmt.Sprintf("templates[%d]", i)
		if i < len(inlineAt) {
			where = inlineAt[i]
		}
		in[i] = templateSource{path: t, where: where}
	}
	return mergeTemplates(spec, in), nil
}

// provisionTemplates reads and compiles the handler's templates and
// resolves each to its route in hf, so a match costs no lookup. A template
// keeps its route, hence its counts, across reloads that keep it.
func (h *RouteMetrics) provisionTemplates(hf *httpFamilies) error {
	if h.OpenAPI == "" && len(h.Templates) == 0 {
		return nil
	}
	srcs, err := templateSources(h.OpenAPI, h.Templates, nil)
	if err != nil {
		return fmt.Errorf("route_metrics %s: %w", h.routeName(), err)
	}
	ts, err := compileTemplates(srcs, "route_metrics "+h.routeName())
	if err != nil {
		return fmt.Errorf("route_metrics %s: %w", h.routeName(), err)
	}
	routes := make([]*route, len(ts.templates))
	for i, t := range ts.templates {
		if routes[i], err = hf.route(t); err != nil {
			return fmt.Errorf("route_metrics %s: template %q: %w", h.routeName(), t, err)
		}
	}
	h.tpl, h.tplRoutes = ts, routes
	return nil
}

// templateRoute is the route of the template path matches, in the
// namespace hf the request is recorded in, or nil for no match.
func (h *RouteMetrics) templateRoute(hf *httpFamilies, path string) *route {
	i := h.tpl.m.match(path)
	if i == matchNone {
		return nil
	}
	if hf == h.http || h.Namespace != "" {
		return h.tplRoutes[i]
	}
	// Inherited namespace: resolved there once, then a map read.
	rt, err := hf.route(h.tpl.templates[i])
	if err != nil {
		h.logger.Error("route_metrics: cannot resolve template route", zap.String("template", h.tpl.templates[i]), zap.Error(err))
		return nil
	}
	return rt
}

// specFile resolves an openapi argument of a Caddyfile: relative to the
// Caddyfile's directory, like import, then absolute, so the adapted JSON
// does not depend on the working directory.
func specFile(caddyfile, file string) string {
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(caddyfile), file)
	}
	if abs, err := filepath.Abs(file); err == nil {
		return abs
	}
	return file
}

// checkTemplates reads and compiles a Caddyfile block's templates, so a bad
// spec or template fails `caddy validate` with both places: the template's
// (spec file:line:column, or Caddyfile:line) and the openapi line's.
func checkTemplates(h *RouteMetrics, pos positions) error {
	if h.OpenAPI == "" && len(h.Templates) == 0 {
		return nil
	}
	at := make([]string, len(pos.templates))
	for i, p := range pos.templates {
		at[i] = p.at()
	}
	setAt := "openapi " + h.OpenAPI
	if h.OpenAPI == "" {
		setAt = at[0]
	}
	srcs, err := templateSources(h.OpenAPI, h.Templates, at)
	if err == nil {
		_, err = compileTemplates(srcs, setAt)
	}
	if err == nil {
		return nil
	}
	if h.OpenAPI != "" {
		return fmt.Errorf("route_metrics: %w, at %s", err, pos.openapi.at())
	}
	return fmt.Errorf("route_metrics: %w", err)
}
