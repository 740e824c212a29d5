package catalog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The embedded catalog is the Python package's file, byte for byte. If this fails, run
// `go generate ./...` in collector/processor/aicostprocessor (CI runs this test).
func TestEmbeddedCatalogIsThePythonPackagesFile(t *testing.T) {
	python := filepath.Join("..", "..", "..", "..", "..", "src", "otel_ai_cost", "pricing", "data", "catalog.json")
	want, err := os.ReadFile(python)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bundled, want) {
		t.Fatalf("internal/catalog/catalog.json differs from %s: run `go generate ./...` in collector/processor/aicostprocessor", python)
	}
}

func TestBundledLoads(t *testing.T) {
	c, err := Load(nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() < 1000 || c.Version == "" {
		t.Fatalf("%v", c)
	}
}

func TestResolution(t *testing.T) {
	c, err := Load(nil, true, map[string]string{"prod-gpt4o": "gpt-4o", "loop-a": "loop-b", "loop-b": "loop-a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ model, provider, want string }{
		{"gpt-4o", "openai", "openai/gpt-4o"},
		{"gpt-4o", "", "openai/gpt-4o"},                                          // provider preference
		{"gpt-4o-2024-08-06", "openai", "openai/gpt-4o-2024-08-06"},              // own snapshot entry
		{"gpt-4o-2099-01-01", "openai", "openai/gpt-4o"},                         // unknown dated snapshot -> base id
		{"claude-sonnet-4-0", "anthropic", "anthropic/claude-sonnet-4-20250514"}, // alias
		{"claude-3-5-haiku-latest", "anthropic", "anthropic/claude-3-5-haiku-20241022"},
		{"anthropic/claude-3-5-haiku-latest", "", "anthropic/claude-3-5-haiku-20241022"}, // provider/ prefix
		{"openai/gpt-4o-mini", "", "openai/gpt-4o-mini"},
		{"prod-gpt4o", "azure.ai.openai", "azure.ai.openai/gpt-4o"}, // Azure deployment
		{"prod-gpt4o", "", "azure.ai.openai/gpt-4o"},
		{"prod-gpt4o", "openai", ""}, // deployments are Azure's only
		{"loop-a", "azure.ai.openai", ""},
		{"us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws.bedrock", "aws.bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0"},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws.bedrock", "aws.bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0"},
		{"gemini-2.5-pro", "gcp.gen_ai", "gcp.gemini/gemini-2.5-pro"}, // provider group
		{"gemini-2.5-pro", "vertex_ai", "gcp.vertex_ai/gemini-2.5-pro"},
		{"no-such-model", "openai", ""},
		{"gpt-4o", "ollama", ""}, // a provider the catalog does not price
		{"", "openai", ""},
	} {
		m := c.Resolve(tc.model, tc.provider)
		got := ""
		if m != nil {
			got = m.Provider + "/" + m.ID
		}
		if got != tc.want {
			t.Errorf("Resolve(%q, %q) = %q, want %q", tc.model, tc.provider, got, tc.want)
		}
		if again := c.Resolve(tc.model, tc.provider); again != m {
			t.Errorf("memoised Resolve(%q, %q) differs", tc.model, tc.provider)
		}
	}
}

func TestUserFileOverridesWholeEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ours.json")
	doc := `{"schema_version": 1, "models": [
	  {"id": "gpt-4o", "provider": "openai", "prices": {"input": "2", "output": "8"}},
	  {"id": "our-llama", "provider": "openai", "aliases": ["llama-ours"], "prices": {"input": "0.1"}}]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{path}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.Version, "+user") {
		t.Errorf("version %q", c.Version)
	}
	m := c.Resolve("gpt-4o", "openai")
	if m.Prices.Femto[Input] != 2_000_000_000 || m.Prices.Has[CacheRead] || len(m.ServiceTiers) != 0 {
		t.Errorf("gpt-4o not replaced whole: %+v", m.Prices)
	}
	if c.Resolve("llama-ours", "openai") == nil {
		t.Error("user alias not found")
	}
}

func TestNumericPricesEqualTheirDecimalStrings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "numbers.json")
	doc := `{"schema_version": 1, "models": [
	  {"id": "as-numbers", "provider": "openai", "prices": {"input": 2.5, "output": 1e1, "cache_read": 0.075, "per_request": 25e-3}},
	  {"id": "as-strings", "provider": "openai", "prices": {"input": "2.5", "output": "10", "cache_read": "0.075", "per_request": "0.025"}}]}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{path}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	numbers, strs := c.Resolve("as-numbers", "openai"), c.Resolve("as-strings", "openai")
	if numbers == nil || strs == nil {
		t.Fatal("models not loaded")
	}
	if numbers.Prices != strs.Prices {
		t.Errorf("numbers %+v != strings %+v", numbers.Prices, strs.Prices)
	}
	// 2.5 USD per million tokens = 2.5e-6 USD per token = 2,500,000,000 femto-USD.
	if numbers.Prices.Femto[Input] != 2_500_000_000 {
		t.Errorf("input = %d femto-USD per token, want 2500000000", numbers.Prices.Femto[Input])
	}
}

func TestMalformedFilesNameFileKeyAndReason(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, doc, key, reason string }{
		{"negative-number-price", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": -2.5}}]}`,
			"models[0].prices.input", "must be non-negative, got -2.5"},
		{"too-precise-number", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": 1e-10}}]}`,
			"models[0].prices.input", "more than 9 decimal places"},
		{"bool-price", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": true}}]}`,
			"models[0].prices.input", "number or decimal string"},
		{"negative-price", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "-1"}}]}`,
			"models[0].prices.input", "non-negative decimal string"},
		{"unknown-field", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"inptu": "1"}}]}`,
			"models[0].prices.inptu", "unknown property"},
		{"missing-prices", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai"}]}`,
			"models[0]", `"prices" is a required property`},
		{"bad-provider", `{"schema_version": 1, "models": [{"id": "m", "provider": "Open AI", "prices": {"input": "1"}}]}`,
			"models[0].provider", "does not match"},
		{"duplicate-alias", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}}, {"id": "n", "provider": "openai", "aliases": ["m"], "prices": {"input": "1"}}]}`,
			"models[1].aliases[0]", "already used by models[0]"},
		{"tiers-not-ascending", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "context_tiers": [{"above_input_tokens": 200000, "prices": {"input": "2"}}, {"above_input_tokens": 100000, "prices": {"input": "3"}}]}]}`,
			"models[0].context_tiers[1].above_input_tokens", "strictly ascending"},
		{"too-precise", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "0.0000000001"}}]}`,
			"models[0].prices.input", "more than 9 decimal places"},
		{"schema-version", `{"schema_version": 2, "models": []}`, "schema_version", "must be 1"},
		{"history-bad-date", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "effective_from": "2024-10-02", "price_history": [{"effective_from": "2024-02-30", "prices": {"input": "2"}}]}]}`,
			"models[0].price_history[0].effective_from", "not a calendar date"},
		{"history-date-format", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "effective_from": "2024/10/02"}]}`,
			"models[0].effective_from", "must be a date YYYY-MM-DD"},
		{"history-without-effective-from", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "price_history": [{"effective_from": "2024-05-13", "prices": {"input": "2"}}]}]}`,
			"models[0].effective_from", "required when price_history is given"},
		{"history-overlaps-current", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "effective_from": "2024-10-02", "price_history": [{"effective_from": "2024-10-02", "prices": {"input": "2"}}]}]}`,
			"models[0].price_history[0].effective_from", "price periods overlap"},
		{"history-out-of-order", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "effective_from": "2024-10-02", "price_history": [{"effective_from": "2024-06-01", "prices": {"input": "2"}}, {"effective_from": "2024-05-01", "prices": {"input": "3"}}]}]}`,
			"models[0].price_history[1].effective_from", "price periods overlap"},
		{"history-bad-price", `{"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": "1"}, "effective_from": "2024-10-02", "price_history": [{"effective_from": "2024-06-01", "prices": {"input": "-2"}}]}]}`,
			"models[0].price_history[0].prices.input", "non-negative decimal string"},
		{"not-json", "{\"schema_version\": 1,\n \"models\": [}", "line 2 column", "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load([]string{path}, true, nil)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v", err)
			}
			if ce.File != path || !strings.HasPrefix(ce.Key, tc.key) || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %q", err)
			}
		})
	}
	_, err := Load([]string{filepath.Join(dir, "missing.json")}, true, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.json: (file): cannot read pricing file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDatedPricesPickThePeriodOfTheDay(t *testing.T) {
	c, err := Load(nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Resolve("gpt-4o", "openai")
	if m == nil || len(m.History) != 1 || m.EffectiveFrom != "2024-10-02" {
		t.Fatalf("gpt-4o: %+v", m)
	}
	// $5/M before 2024-10-02 (UTC), $2.50/M from that day; a day before the first period gets the first.
	for day, femto := range map[string]uint64{"2023-01-01": 5_000_000_000, "2024-10-01": 5_000_000_000,
		"2024-10-02": 2_500_000_000, "2026-12-04": 2_500_000_000} {
		if got := m.At(day).Prices.Femto[Input]; got != femto {
			t.Errorf("%s: input %d femto-USD per token, want %d", day, got, femto)
		}
	}
	if Day(uint64(time.Date(2024, 10, 1, 23, 59, 59, 999_999_999, time.UTC).UnixNano())) != "2024-10-01" {
		t.Error("Day is not the UTC day")
	}
	if Day(0) != time.Now().UTC().Format(time.DateOnly) {
		t.Error("Day(0) is not today")
	}
}
