package aicostprocessor

import (
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	if err != nil || cfg.Override != OverrideNever {
		t.Fatalf("default: %+v %v", cfg, err)
	}
	cfg, err = loadConfig(t, "custom")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Override != OverrideLocalOnly || cfg.AzureDeployments["prod-gpt4o"] != "gpt-4o" || len(cfg.PricingFiles) != 1 {
		t.Fatalf("%+v", cfg)
	}
	cat, err := cfg.loadCatalog()
	if err != nil || cat.Resolve("our-llama", "openai") == nil || !strings.HasSuffix(cat.Version, "+user") {
		t.Fatalf("custom catalog: %v %v", cat, err)
	}
	if _, err := loadConfig(t, "bad_override"); err == nil || !strings.Contains(err.Error(), `override: "sometimes" is not one of never, local_only, always`) {
		t.Fatalf("bad override: %v", err)
	}
	// A malformed pricing file fails at start, naming the file, the key and the reason.
	_, err = loadConfig(t, "bad_file")
	if err == nil || !strings.Contains(err.Error(), "testdata/malformed.json: models[0].prices.input: price must be a non-negative decimal string") {
		t.Fatalf("bad file: %v", err)
	}
}
