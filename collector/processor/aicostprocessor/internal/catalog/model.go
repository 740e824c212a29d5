// Package catalog reads the otel-ai-cost pricing catalog (the Python package's
// src/otel_ai_cost/pricing/data/catalog.json, embedded here byte for byte) and resolves the
// model names spans carry to catalog entries, with the same rules as otel_ai_cost.pricing.
package catalog

import (
	"math"
	"time"
)

// Field is one price of a price set, in the catalog file's order.
type Field int

// The price fields (catalog.schema.json $defs.prices).
const (
	Input Field = iota
	Output
	CacheRead
	CacheReadAudio
	CacheWrite
	CacheWrite1h
	CacheWrite12h
	Reasoning
	AudioInput
	AudioOutput
	ImageInput
	ImageOutput
	VideoInput
	PerImage
	PerRequest
	WebSearch
	NumFields
)

// FieldNames are the catalog file's names of the fields.
var FieldNames = [NumFields]string{
	"input", "output", "cache_read", "cache_read_audio", "cache_write", "cache_write_1h", "cache_write_12h", "reasoning", "audio_input",
	"audio_output", "image_input", "image_output", "video_input", "per_image", "per_request", "web_search",
}

// PerUnit reports whether a field is USD per unit (an image, a request, a search) rather than
// USD per 1,000,000 tokens.
func (f Field) PerUnit() bool { return f == PerImage || f == PerRequest || f == WebSearch }

// FemtoPerUSD is the unit prices are held in: 10^-15 USD. A token price (USD per million
// tokens, at most 9 decimals) is held per token, a unit price (at most 15 decimals) per unit,
// so every product count x price is an exact integer number of femto-dollars.
const FemtoPerUSD = 1_000_000_000_000_000

// PriceSet is one set of prices; Has says which fields the catalog gives.
type PriceSet struct {
	Has   [NumFields]bool
	Femto [NumFields]uint64 // femto-USD per token (token fields) or per unit
}

// ContextTier prices the whole request once its input exceeds a threshold.
type ContextTier struct {
	AboveInputTokens int64
	Prices           PriceSet
	ServiceTiers     map[string]*PriceSet
}

// Service tiers the catalog prices; index 0 of Model.resolved is the base prices.
var ServiceTierNames = [...]string{"", "batch", "flex", "priority"}

// Resolved are the unit prices one (service tier, context tier) pair charges, after the look-up
// chain and the fallbacks of otel_ai_cost.cost (computed once, at load).
type Resolved struct {
	UsedTier string // service tier whose prices were used, "" for base
	Has      [NumFields]bool
	Femto    [NumFields]uint64
}

// Model is one catalog entry.
type Model struct {
	ID           string
	Provider     string
	Mode         string
	Prices       PriceSet
	ServiceTiers map[string]*PriceSet
	ContextTiers []ContextTier // ascending by threshold
	Aliases      []string
	// Dated prices: EffectiveFrom (YYYY-MM-DD, UTC) is the day the prices above took effect; History
	// holds the earlier price periods, oldest first, each a Model of its own prices. At picks one.
	EffectiveFrom string
	History       []*Model
	// resolved[serviceTierIndex][contextTierIndex+1]
	resolved [len(ServiceTierNames)][]Resolved
}

// fallbacks: a missing field is priced at the first of these the chain has (otel_ai_cost.cost).
var fallbacks = [NumFields][]Field{
	CacheRead:      {Input},
	CacheReadAudio: {CacheRead, Input},
	CacheWrite:     {Input},
	CacheWrite1h:   {CacheWrite, Input},
	CacheWrite12h:  {CacheWrite, Input},
	Reasoning:      {Output},
	AudioInput:     {Input},
	AudioOutput:    {Output},
	ImageInput:     {Input},
}

// noFallback are the fields compute_cost looks up raw (a missing price means "not priced apart").
var noFallback = [NumFields]bool{ImageInput: true, ImageOutput: true, VideoInput: true, WebSearch: true}

func (m *Model) prepare() {
	for ti, tier := range ServiceTierNames {
		m.resolved[ti] = make([]Resolved, len(m.ContextTiers)+1)
		for ci := -1; ci < len(m.ContextTiers); ci++ {
			m.resolved[ti][ci+1] = m.resolve(tier, ci)
		}
	}
}

// resolve builds the chain: context tier's service tier, context tier, service tier, base.
func (m *Model) resolve(tier string, contextIndex int) Resolved {
	var chain []*PriceSet
	var out Resolved
	if contextIndex >= 0 {
		ct := &m.ContextTiers[contextIndex]
		if tier != "" {
			if p := ct.ServiceTiers[tier]; p != nil {
				chain = append(chain, p)
				out.UsedTier = tier
			}
		}
		chain = append(chain, &ct.Prices)
	}
	if tier != "" {
		if p := m.ServiceTiers[tier]; p != nil {
			chain = append(chain, p)
			out.UsedTier = tier
		}
	}
	chain = append(chain, &m.Prices)
	raw := func(f Field) (uint64, bool) {
		for _, p := range chain {
			if p.Has[f] {
				return p.Femto[f], true
			}
		}
		return 0, false
	}
	for f := Field(0); f < NumFields; f++ {
		v, ok := raw(f)
		if !ok && !noFallback[f] {
			for _, fb := range fallbacks[f] {
				if v, ok = raw(fb); ok {
					break
				}
			}
		}
		out.Has[f], out.Femto[f] = ok, v
	}
	return out
}

// ServiceTierIndex maps a requested or reported service tier to ServiceTierNames' index:
// "batch", "flex", "priority" select theirs; anything else (OpenAI's "default", "auto",
// "standard", "scale", a tier the catalog does not know) means base prices.
func ServiceTierIndex(tier string) int {
	switch tier {
	case "", "default", "auto", "standard", "scale":
		return 0
	case "batch":
		return 1
	case "flex":
		return 2
	case "priority":
		return 3
	}
	t := trimLower(tier)
	if t != tier {
		return ServiceTierIndex(t)
	}
	return 0
}

func trimLower(s string) string {
	b := []byte(s)
	start, end := 0, len(b)
	for start < end && (b[start] == ' ' || b[start] == '\t' || b[start] == '\n' || b[start] == '\r') {
		start++
	}
	for end > start && (b[end-1] == ' ' || b[end-1] == '\t' || b[end-1] == '\n' || b[end-1] == '\r') {
		end--
	}
	b = b[start:end]
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Unit returns the unit prices for a service tier index and an input token count (input
// including cache): the context tier with the highest threshold strictly below it prices the
// whole request. It also returns that threshold (or -1).
func (m *Model) Unit(serviceTier int, inputTokens int64) (*Resolved, int64) {
	ci := -1
	for i := range m.ContextTiers {
		if m.ContextTiers[i].AboveInputTokens < inputTokens {
			ci = i // thresholds are strictly ascending
		}
	}
	threshold := int64(-1)
	if ci >= 0 {
		threshold = m.ContextTiers[ci].AboveInputTokens
	}
	return &m.resolved[serviceTier][ci+1], threshold
}

// At returns the price period in force on a UTC day (YYYY-MM-DD): the latest period that started
// on or before it. A day before the first known period gets the first period.
func (m *Model) At(day string) *Model {
	if len(m.History) == 0 || day >= m.EffectiveFrom {
		return m
	}
	for i := len(m.History) - 1; i >= 0; i-- {
		if day >= m.History[i].EffectiveFrom {
			return m.History[i]
		}
	}
	return m.History[0]
}

// Day is the UTC day (YYYY-MM-DD) of a time in nanoseconds since the Unix epoch, as a span's start
// time is; 0 (a span without a start time) or a time past what int64 holds means now.
func Day(unixNano uint64) string {
	if unixNano == 0 || unixNano > math.MaxInt64 {
		return time.Now().UTC().Format(time.DateOnly)
	}
	return time.Unix(0, int64(unixNano)).UTC().Format(time.DateOnly)
}
