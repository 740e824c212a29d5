package catalog

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Provider names (gen_ai.provider.name values) the rules treat specially.
const (
	Azure   = "azure.ai.openai"
	Bedrock = "aws.bedrock"
)

// providerPreference: when no provider is given, a model listed by several providers resolves to
// the first of these (the model maker's own API before the clouds that resell it).
var providerPreference = []string{
	"openai", "anthropic", "gcp.gemini", "mistral_ai", "cohere", "deepseek", "x_ai",
	"groq", "gcp.vertex_ai", "aws.bedrock", "azure.ai.openai",
}

// modelPrefixes: `provider/model` prefixes users and proxies put in front of a model name.
var modelPrefixes = map[string]string{
	"openai": "openai", "azure": Azure, "anthropic": "anthropic", "gemini": "gcp.gemini",
	"vertex_ai": "gcp.vertex_ai", "bedrock": Bedrock, "mistral": "mistral_ai", "cohere": "cohere",
	"groq": "groq", "deepseek": "deepseek", "xai": "x_ai",
}

// providerGroups: provider names that mean one (or several) of ours.
var providerGroups = map[string][]string{
	"azure": {Azure}, "bedrock": {Bedrock}, "gemini": {"gcp.gemini"},
	"vertex_ai": {"gcp.vertex_ai"}, "mistral": {"mistral_ai"}, "xai": {"x_ai"},
	"gcp.gen_ai": {"gcp.gemini", "gcp.vertex_ai"},
}

var (
	bedrockRegionPrefix = regexp.MustCompile(`^(?:us|us-gov|eu|apac|au|jp|ca|global)\.(.+\..+)$`)
	snapshotSuffix      = regexp.MustCompile(`^(.+?)(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$`)
)

const memoSize = 4096

type memoKey struct{ model, provider string }

// Catalog is the model prices indexed for resolution. It is safe for concurrent use.
type Catalog struct {
	Version       string
	models        []*Model
	ids           map[string]map[string]*Model
	aliases       map[string]map[string]*Model
	providerOrder []string
	azure         map[string]string

	mu   sync.RWMutex
	memo map[memoKey]*Model
}

// Load reads the embedded catalog (unless includeDefault is false) overridden by each file in turn:
// an entry in a later file replaces the earlier entry with the same (provider, id) whole.
func Load(files []string, includeDefault bool, azureDeployments map[string]string) (*Catalog, error) {
	var models []*Model
	var versions []string
	if includeDefault {
		f, err := Parse(bundled, BundledName)
		if err != nil {
			return nil, err
		}
		models = append(models, f.Models...)
		versions = append(versions, f.Version)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{File: path, Key: "(file)", Reason: "cannot read pricing file: " + err.Error()}
		}
		f, err := Parse(data, path)
		if err != nil {
			return nil, err
		}
		models = append(models, f.Models...)
		if !includeDefault && len(versions) == 0 {
			v := f.Version
			if v == "" {
				v = "user"
			}
			versions = append(versions, v)
		}
	}
	version := "empty"
	if len(versions) > 0 {
		version = versions[0]
	}
	if includeDefault && len(files) > 0 {
		version += "+user"
	}
	return New(models, version, azureDeployments), nil
}

// New indexes models (later entries override earlier ones with the same provider and id).
func New(models []*Model, version string, azureDeployments map[string]string) *Catalog {
	c := &Catalog{
		Version: version,
		ids:     map[string]map[string]*Model{},
		aliases: map[string]map[string]*Model{},
		azure:   map[string]string{},
		memo:    map[memoKey]*Model{},
	}
	type key struct{ provider, id string }
	index := map[key]int{}
	for _, m := range models {
		k := key{m.Provider, m.ID}
		if i, ok := index[k]; ok {
			c.models[i] = m // keeps the first position, as a Python dict does
			continue
		}
		index[k] = len(c.models)
		c.models = append(c.models, m)
	}
	for _, m := range c.models {
		if c.ids[m.Provider] == nil {
			c.ids[m.Provider] = map[string]*Model{}
		}
		c.ids[m.Provider][m.ID] = m
	}
	for _, m := range c.models {
		for _, a := range m.Aliases {
			if c.aliases[m.Provider] == nil {
				c.aliases[m.Provider] = map[string]*Model{}
			}
			c.aliases[m.Provider][a] = m
		}
	}
	rank := map[string]int{}
	for i, p := range providerPreference {
		rank[p] = i
	}
	for p := range c.ids {
		c.providerOrder = append(c.providerOrder, p)
	}
	sort.Slice(c.providerOrder, func(i, j int) bool {
		a, b := c.providerOrder[i], c.providerOrder[j]
		ra, oka := rank[a]
		rb, okb := rank[b]
		if !oka {
			ra = len(rank)
		}
		if !okb {
			rb = len(rank)
		}
		if ra != rb {
			return ra < rb
		}
		return a < b
	})
	for k, v := range azureDeployments {
		c.azure[k] = v
	}
	return c
}

// Models returns the entries sorted by (provider, id).
func (c *Catalog) Models() []*Model {
	out := append([]*Model(nil), c.models...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Len is the number of entries.
func (c *Catalog) Len() int { return len(c.models) }

// KnowsProvider reports whether a provider name means one of the catalog's providers.
func (c *Catalog) KnowsProvider(provider string) bool {
	for _, p := range c.providers(provider) {
		if _, ok := c.ids[p]; ok {
			return true
		}
	}
	return false
}

// Resolve returns the entry for a model name as a span carries it, or nil if unknown.
// provider "" means no provider given.
func (c *Catalog) Resolve(model, provider string) *Model {
	if model == "" {
		return nil
	}
	key := memoKey{model, provider}
	c.mu.RLock()
	hit, ok := c.memo[key]
	c.mu.RUnlock()
	if ok {
		return hit
	}
	hit = c.resolve(model, provider, true)
	c.mu.Lock()
	if len(c.memo) >= memoSize {
		c.memo = map[memoKey]*Model{} // bounded: a burst of distinct names must not grow memory forever
	}
	c.memo[key] = hit
	c.mu.Unlock()
	return hit
}

func (c *Catalog) providers(provider string) []string {
	if provider == "" {
		return c.providerOrder
	}
	if g, ok := providerGroups[provider]; ok {
		return g
	}
	return []string{provider}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Catalog) find(name, provider string) *Model {
	providers := c.providers(provider)
	for _, p := range providers {
		if hit := c.ids[p][name]; hit != nil {
			return hit
		}
	}
	for _, p := range providers {
		if hit := c.aliases[p][name]; hit != nil {
			return hit
		}
	}
	return nil
}

// resolve follows otel_ai_cost.pricing.Catalog._resolve rule by rule, in the same order.
func (c *Catalog) resolve(model, provider string, deployments bool) *Model {
	if hit := c.find(model, provider); hit != nil {
		return hit
	}
	providers := c.providers(provider)
	azureOK := provider == "" || contains(providers, Azure)
	if target, ok := c.azure[model]; deployments && azureOK && ok {
		// A deployment names a model, never another deployment (so a=b,b=a cannot loop).
		return c.resolve(target, Azure, false)
	}
	if head, tail, sep := strings.Cut(model, "/"); sep && tail != "" {
		if p, ok := modelPrefixes[head]; ok {
			return c.resolve(tail, p, deployments)
		}
	}
	bedrockOK := provider == "" || contains(providers, Bedrock)
	if bedrockOK && strings.HasPrefix(model, "arn:aws") && strings.Contains(model, "/") {
		// arn:aws:bedrock:<region>:<account>:inference-profile/us.anthropic.claude-... -> the last part
		return c.resolve(model[strings.LastIndexByte(model, '/')+1:], Bedrock, deployments)
	}
	if bedrockOK {
		if m := bedrockRegionPrefix.FindStringSubmatch(model); m != nil {
			if hit := c.resolve(m[1], Bedrock, deployments); hit != nil {
				return hit
			}
		}
	}
	if m := snapshotSuffix.FindStringSubmatch(model); m != nil {
		if hit := c.resolve(m[1], provider, deployments); hit != nil {
			return hit
		}
	}
	if provider != "" && len(providers) == 1 && providers[0] == Azure {
		// Azure OpenAI sells OpenAI's models at OpenAI's list prices when it has no entry of its own.
		return c.resolve(model, "openai", deployments)
	}
	return nil
}

// String describes the catalog for logs.
func (c *Catalog) String() string {
	return fmt.Sprintf("catalog %s (%d models)", c.Version, len(c.models))
}
