// Package spans reads what a GenAI span says about one model call (kind of operation, provider,
// model, service tier, token usage), under the current GenAI semantic-convention names and the
// ones still in the wild (deprecated semconv names, OpenLLMetry, OpenInference).
package spans

import (
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/cost"
)

// Count slots.
const (
	slotInput = iota
	slotOutput
	slotCacheRead
	slotCacheWrite
	slotCacheWrite1h
	slotReasoning
	slotAudioInput
	slotAudioOutput
	slotWebSearch
	numSlots
)

// A token-count attribute: the slot it fills, and its rank (lower wins when several are present).
type countName struct {
	slot, rank int
}

// CountNames lists every token-count attribute read, by slot, best name first.
var CountNames = map[string]countName{
	"gen_ai.usage.input_tokens":                    {slotInput, 0},
	"gen_ai.usage.prompt_tokens":                   {slotInput, 1}, // deprecated semconv
	"llm.usage.prompt_tokens":                      {slotInput, 2}, // OpenLLMetry
	"llm.token_count.prompt":                       {slotInput, 3}, // OpenInference
	"gen_ai.usage.output_tokens":                   {slotOutput, 0},
	"gen_ai.usage.completion_tokens":               {slotOutput, 1},
	"llm.usage.completion_tokens":                  {slotOutput, 2},
	"llm.token_count.completion":                   {slotOutput, 3},
	"gen_ai.usage.cache_read.input_tokens":         {slotCacheRead, 0},
	"gen_ai.usage.cache_read_input_tokens":         {slotCacheRead, 1}, // OpenLLMetry
	"llm.token_count.prompt_details.cache_read":    {slotCacheRead, 2},
	"gen_ai.usage.cache_write.input_tokens":        {slotCacheWrite, 0},
	"gen_ai.usage.cache_creation.input_tokens":     {slotCacheWrite, 1}, // semconv v1.41 name
	"gen_ai.usage.cache_creation_input_tokens":     {slotCacheWrite, 2}, // OpenLLMetry
	"llm.token_count.prompt_details.cache_write":   {slotCacheWrite, 3},
	"gen_ai.usage.reasoning.output_tokens":         {slotReasoning, 0},
	"gen_ai.usage.reasoning_tokens":                {slotReasoning, 1}, // OpenLLMetry
	"llm.usage.reasoning_tokens":                   {slotReasoning, 2},
	"llm.token_count.completion_details.reasoning": {slotReasoning, 3},
	"llm.token_count.prompt_details.audio":         {slotAudioInput, 0},
	"llm.token_count.completion_details.audio":     {slotAudioOutput, 0},
	"ai_cost.usage.web_search_requests":            {slotWebSearch, 0},
}

// Kind is what a span is, for pricing.
type Kind int

const (
	// NotGenAI: nothing says this span is a model call; it passes untouched and uncounted.
	NotGenAI Kind = iota
	// Inference: one model call, priced.
	Inference
	// Aggregate: an agent, workflow, chain or tool span that repeats its children's tokens.
	Aggregate
)

// inferenceOperations: gen_ai.operation.name values of one model call (as the Python package).
var inferenceOperations = map[string]bool{"chat": true, "text_completion": true, "generate_content": true, "embeddings": true}

// legacyProviders: gen_ai.system (deprecated) and OpenInference llm.provider / llm.system values
// that are spelled differently in gen_ai.provider.name.
var legacyProviders = map[string]string{
	"xai": "x_ai", "az.ai.openai": "azure.ai.openai", "az.ai.inference": "azure.ai.inference",
	"vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai", "gemini": "gcp.gemini",
	"google": "gcp.gen_ai", "aws": "aws.bedrock", "mistralai": "mistral_ai",
}

// Facts is what one span says.
type Facts struct {
	Kind      Kind
	Provider  string    // normalised to gen_ai.provider.name values, "" when none given
	Models    [5]string // response model, request model, then older names; "" = absent
	Tier      string
	HasUsage  bool
	Malformed bool // a token count that is not a number was ignored
	Usage     cost.Usage
	HasAmount bool   // gen_ai.usage.cost.amount already present
	Source    string // gen_ai.usage.cost.source
	HasOurs   bool   // any ai_cost.cost.* / ai_cost.pricing.* attribute present
	// ai_cost.pricing.priced_on present: the span belongs to a call otel-ai-cost prices on another
	// span (an SDK's own span, an HTTP client span); pricing it would count the call twice.
	PricedOn bool
}

// Read fills f from a span's attributes in one pass.
func Read(attrs pcommon.Map, f *Facts) {
	*f = Facts{}
	var (
		op, oiKind, traceloopKind, requestType   string
		provider, system, llmProvider, llmSystem string
		tiers                                    [4]string
		counts                                   [numSlots]int64
		ranks                                    [numSlots]int
	)
	for i := range ranks {
		ranks[i] = math.MaxInt
	}
	for k, v := range attrs.All() {
		if cn, ok := CountNames[k]; ok {
			n, good := toCount(v)
			if !good {
				f.Malformed = true
				continue
			}
			if cn.rank < ranks[cn.slot] {
				ranks[cn.slot], counts[cn.slot] = cn.rank, n
			}
			continue
		}
		switch k {
		case "gen_ai.operation.name":
			op = str(v)
		case "openinference.span.kind":
			oiKind = str(v)
		case "traceloop.span.kind":
			traceloopKind = str(v)
		case "llm.request.type":
			requestType = str(v)
		case "gen_ai.provider.name":
			provider = str(v)
		case "gen_ai.system":
			system = str(v)
		case "llm.provider":
			llmProvider = str(v)
		case "llm.system":
			llmSystem = str(v)
		case "gen_ai.response.model":
			f.Models[0] = str(v)
		case "gen_ai.request.model":
			f.Models[1] = str(v)
		case "llm.response.model":
			f.Models[2] = str(v)
		case "llm.request.model":
			f.Models[3] = str(v)
		case "llm.model_name":
			f.Models[4] = str(v)
		case "openai.response.service_tier":
			tiers[0] = str(v)
		case "gen_ai.openai.response.service_tier":
			tiers[1] = str(v)
		case "openai.request.service_tier":
			tiers[2] = str(v)
		case "gen_ai.openai.request.service_tier":
			tiers[3] = str(v)
		case "gen_ai.usage.cost.amount":
			f.HasAmount = true
		case "gen_ai.usage.cost.source":
			f.Source = str(v)
		case "ai_cost.pricing.priced_on":
			f.PricedOn = true
		default:
			if strings.HasPrefix(k, "ai_cost.cost.") || strings.HasPrefix(k, "ai_cost.pricing.") {
				f.HasOurs = true
			}
		}
	}
	for _, t := range tiers {
		if t != "" {
			f.Tier = t
			break
		}
	}
	f.Provider = normaliseProvider(provider, system, llmProvider, llmSystem)
	f.HasUsage = ranks[slotInput] != math.MaxInt || ranks[slotOutput] != math.MaxInt
	f.Usage = cost.Usage{
		InputTokens:             counts[slotInput],
		OutputTokens:            counts[slotOutput],
		CacheReadInputTokens:    counts[slotCacheRead],
		CacheWriteInputTokens:   counts[slotCacheWrite],
		CacheWrite1hInputTokens: counts[slotCacheWrite1h],
		ReasoningOutputTokens:   counts[slotReasoning],
		AudioInputTokens:        counts[slotAudioInput],
		AudioOutputTokens:       counts[slotAudioOutput],
		WebSearchRequests:       counts[slotWebSearch],
		Requests:                1,
	}
	f.Kind = kind(op, oiKind, traceloopKind, requestType, f)
}

func kind(op, oiKind, traceloopKind, requestType string, f *Facts) Kind {
	switch {
	case op != "":
		if inferenceOperations[op] {
			return Inference
		}
		return Aggregate // invoke_agent, create_agent, execute_tool, ...
	case oiKind != "":
		if oiKind == "LLM" || oiKind == "EMBEDDING" {
			return Inference
		}
		return Aggregate // AGENT, CHAIN, TOOL, RETRIEVER, ...
	case traceloopKind != "":
		return Aggregate // OpenLLMetry's workflow, task, agent and tool spans
	case requestType != "":
		return Inference // OpenLLMetry's chat / completion / embedding calls
	case f.HasUsage && f.Provider != "" && (f.Models != [5]string{}):
		return Inference // usage, provider and model, and nothing says it is an aggregate
	}
	return NotGenAI
}

func normaliseProvider(provider, system, llmProvider, llmSystem string) string {
	if provider != "" {
		return provider
	}
	for _, p := range [...]string{system, llmProvider, llmSystem} {
		if p == "" {
			continue
		}
		p = strings.ToLower(p) // no allocation when already lower case
		if m, ok := legacyProviders[p]; ok {
			return m
		}
		return p
	}
	return ""
}

func str(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return ""
}

// toCount reads a token count sent as an int, a double or a string, as the Python package's
// _first does (negative counts as 0, doubles truncated); false when it is not a number.
func toCount(v pcommon.Value) (int64, bool) {
	var n int64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		n = v.Int()
	case pcommon.ValueTypeDouble:
		d := v.Double()
		if math.IsNaN(d) || math.IsInf(d, 0) || math.Abs(d) >= 1<<62 {
			return 0, false
		}
		n = int64(d)
	case pcommon.ValueTypeStr:
		s := strings.TrimSpace(v.Str())
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || d != math.Trunc(d) || math.Abs(d) >= 1<<62 {
				return 0, false
			}
			i = int64(d)
		}
		n = i
	default:
		return 0, false
	}
	if n < 0 {
		n = 0
	}
	return n, true
}

// Count reads a token count attribute as Read does (ints, doubles and strings; negative as 0).
func Count(v pcommon.Value) (int64, bool) { return toCount(v) }
