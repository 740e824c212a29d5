package aicostprocessor // import "github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor"

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/component"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/catalog"
)

// Override says what to do with a span that already carries gen_ai.usage.cost.amount.
type Override string

const (
	// OverrideNever keeps every cost already on a span (from the provider or an SDK).
	OverrideNever Override = "never"
	// OverrideLocalOnly recomputes costs an SDK computed from its catalog
	// (gen_ai.usage.cost.source = local) and keeps costs the provider reported.
	OverrideLocalOnly Override = "local_only"
	// OverrideAlways recomputes every cost with this collector's catalog.
	OverrideAlways Override = "always"
)

// Config is the ai_cost processor's configuration.
type Config struct {
	// Override: never (default) | local_only | always.
	Override Override `mapstructure:"override"`
	// PricingFiles are catalog files (the format of catalog.schema.json) applied over the
	// embedded catalog in turn: an entry replaces the one with the same provider and id.
	PricingFiles []string `mapstructure:"pricing_files"`
	// ExcludeDefaultCatalog prices from PricingFiles only.
	ExcludeDefaultCatalog bool `mapstructure:"exclude_default_catalog"`
	// AzureDeployments maps Azure OpenAI deployment names (what Azure spans carry as the model)
	// to model ids, e.g. {my-gpt4o: gpt-4o}.
	AzureDeployments map[string]string `mapstructure:"azure_deployments"`
	// Anomalies: the anomaly detector, run on every GenAI inference span after pricing (off by default).
	Anomalies AnomalyConfig `mapstructure:"anomalies"`

	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration, and loads the catalog so that a malformed pricing file fails
// at start with the file, the key and the reason.
func (cfg *Config) Validate() error {
	switch cfg.Override {
	case OverrideNever, OverrideLocalOnly, OverrideAlways:
	default:
		return fmt.Errorf("override: %q is not one of never, local_only, always", cfg.Override)
	}
	if cfg.ExcludeDefaultCatalog && len(cfg.PricingFiles) == 0 {
		return errors.New("exclude_default_catalog: true needs at least one file in pricing_files")
	}
	for name, model := range cfg.AzureDeployments {
		if strings.TrimSpace(name) == "" || strings.TrimSpace(model) == "" {
			return fmt.Errorf("azure_deployments: bad item %q: %q: expected DEPLOYMENT: MODEL, e.g. my-deploy: gpt-4o", name, model)
		}
	}
	if err := cfg.Anomalies.validate(); err != nil {
		return err
	}
	_, err := cfg.loadCatalog()
	return err
}

func (cfg *Config) loadCatalog() (*catalog.Catalog, error) {
	return catalog.Load(cfg.PricingFiles, !cfg.ExcludeDefaultCatalog, cfg.AzureDeployments)
}
