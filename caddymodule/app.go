package routemetrics

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// App is the routemetrics app: the registry's limits, set by the
// route_metrics global option (JSON: apps.routemetrics). The handlers get
// the registry through it (ctx.App), so the first configuration that
// provisions a handler creates the registry with these limits.
//
// The registry lives as long as the process: Caddy cleans up an old
// configuration after the new one started, and handler goroutines of a
// force-closed connection can outlive that, so a registry that handlers
// may still record into is never freed. Its limits are therefore fixed
// when it is created; a reload that asks for other limits is refused with
// a message asking for a restart (the old configuration keeps running).
// Without the option every limit is libmetrics' default.
type App struct {
	// Metric families the registry holds at most (business counters,
	// Server-Timing, the HTTP families of every namespace and the
	// plugin's own). Default 256.
	MaxFamilies int `json:"max_families,omitempty"`
	// 64-bit cells per shard for all series (reserved address space,
	// touched lazily). Default 2097152.
	SlotCapacity int `json:"slot_capacity,omitempty"`
	// Threads that record into shards of their own; more share one.
	// Default 64.
	MaxShards int `json:"max_shards,omitempty"`
	// Bytes a label value keeps after sanitising. Default 256.
	MaxLabelValueLen int `json:"max_label_value_len,omitempty"`
	// 64-bit cells per shard for native histogram buckets (reserved
	// address space, touched lazily). Default 4194304.
	NativeCapacity int `json:"native_capacity,omitempty"`
	// Routes (endpoint label values) per namespace. Default 1000.
	MaxRoutes int `json:"max_routes,omitempty"`
	// Series per HTTP family of a namespace before new label sets fold
	// into its overflow series. Default 10000.
	MaxSeries int `json:"max_series,omitempty"`

	reg *lmRegistry
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: appID, New: func() caddy.Module { return new(App) }}
}

const appID = "routemetrics"

func (a *App) limits() registryLimits {
	return registryLimits{maxFamilies: a.MaxFamilies, slotCapacity: a.SlotCapacity, maxShards: a.MaxShards,
		maxLabelValueLen: a.MaxLabelValueLen, nativeCapacity: a.NativeCapacity,
		maxRoutes: a.MaxRoutes, maxSeries: a.MaxSeries}
}

// limitField is one limit as the global option and JSON spell it, and the
// field it sets.
type limitField struct {
	name string
	v    *int
}

// fields lists a's limits in the order the documentation gives them.
func (a *App) fields() []limitField {
	return []limitField{{"max_families", &a.MaxFamilies}, {"slot_capacity", &a.SlotCapacity},
		{"max_shards", &a.MaxShards}, {"max_label_value_len", &a.MaxLabelValueLen},
		{"native_capacity", &a.NativeCapacity}, {"max_routes", &a.MaxRoutes}, {"max_series", &a.MaxSeries}}
}

// Validate refuses a negative limit, and limits libmetrics would refuse
// (registryLimits.check: its upper bounds, with its reason).
func (a *App) Validate() error {
	for _, l := range a.fields() {
		if *l.v < 0 {
			return fmt.Errorf("routemetrics: %s %d must not be negative", l.name, *l.v)
		}
	}
	if err := a.limits().check(); err != nil {
		return fmt.Errorf("routemetrics: %w", err)
	}
	return nil
}

// Provision opens the process-wide registry with the limits (registry.go:
// openRegistry).
func (a *App) Provision(caddy.Context) error {
	if err := a.Validate(); err != nil {
		return err
	}
	var err error
	a.reg, err = openRegistry(a.limits())
	return err
}

// Start and Stop do nothing: the registry outlives every configuration.
func (*App) Start() error { return nil }

// Stop: see Start.
func (*App) Stop() error { return nil }

// appRegistry returns the registry of ctx's routemetrics app; without
// one in the configuration (no global option), the registry with the
// default limits.
func appRegistry(ctx caddy.Context) (*lmRegistry, error) {
	app, err := ctx.AppIfConfigured(appID)
	if errors.Is(err, caddy.ErrNotConfigured) {
		return openRegistry(registryLimits{})
	}
	if err != nil {
		return nil, err
	}
	return app.(*App).reg, nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
