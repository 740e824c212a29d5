// Package cost is the cost engine: normalised usage x catalog price -> exact cost breakdown.
// It follows the rules written in the docstring of src/otel_ai_cost/cost.py, and the shared
// vectors in tests/vectors/cost_vectors.json hold it to the Python engine to the last digit.
package cost

import "github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/catalog"

// Component is one part of the cost breakdown (the suffix of an ai_cost.cost.* attribute).
type Component int

// The components, in the order of otel_ai_cost.cost.COMPONENTS.
const (
	Input Component = iota
	CacheRead
	CacheReadAudio
	CacheWrite
	Output
	Reasoning
	AudioInput
	AudioOutput
	Image
	Request
	WebSearch
	NumComponents
)

// ComponentNames are the component names.
var ComponentNames = [NumComponents]string{
	"input", "cache_read", "cache_read_audio", "cache_write", "output", "reasoning", "audio_input", "audio_output",
	"image", "request", "web_search",
}

// Usage is token usage normalised to the GenAI semconv rules: InputTokens includes cache reads
// and writes, OutputTokens includes reasoning tokens; the detail fields are subsets of those.
// Negative counts count as 0.
type Usage struct {
	InputTokens               int64
	OutputTokens              int64
	CacheReadInputTokens      int64
	CacheWriteInputTokens     int64 // all cache writes (5-minute + 1-hour)
	CacheWrite1hInputTokens   int64 // the 1-hour part of CacheWriteInputTokens
	CacheWrite12hInputTokens  int64 // the 12-hour part of CacheWriteInputTokens (OpenAI)
	ReasoningOutputTokens     int64
	AudioInputTokens          int64 // all audio input, cached or not
	CacheReadAudioInputTokens int64 // the cached part of AudioInputTokens (also in CacheReadInputTokens)
	AudioOutputTokens         int64
	ImageInputTokens          int64 // uncached image input
	VideoInputTokens          int64 // uncached video input
	ImageOutputTokens         int64
	Images                    int64
	Requests                  int64 // 1 for one call
	WebSearchRequests         int64
}

// Cost is the exact cost of one request.
type Cost struct {
	Total       Amount
	Has         [NumComponents]bool // which components the breakdown has
	Breakdown   [NumComponents]Amount
	ModelID     string
	ServiceTier string // service tier whose prices were used, "" for base
	ContextTier int64  // threshold of the context tier used, -1 for none
	Unpriced    [NumComponents]bool
	AnyUnpriced bool
}

func count(v int64) uint64 {
	if v > 0 {
		return uint64(v)
	}
	return 0
}

func sub(a uint64, b ...uint64) uint64 {
	for _, x := range b {
		if x >= a {
			return 0
		}
		a -= x
	}
	return a
}

type part struct {
	count uint64
	femto uint64
	has   bool
}

func (c *Cost) charge(comp Component, parts ...part) {
	var amount Amount
	priced, missing := false, false
	for _, p := range parts {
		if p.count == 0 {
			continue
		}
		if !p.has {
			missing = true
			continue
		}
		amount = amount.Add(mul(p.count, p.femto))
		priced = true
	}
	if priced {
		c.Has[comp] = true
		c.Breakdown[comp] = amount
		c.Total = c.Total.Add(amount)
	} else if missing {
		c.Unpriced[comp] = true
		c.AnyUnpriced = true
	}
}

// Compute prices usage with one catalog entry at a service tier (as reported or requested).
func Compute(u *Usage, m *catalog.Model, serviceTier string) Cost {
	input := count(u.InputTokens)
	unit, threshold := m.Unit(catalog.ServiceTierIndex(serviceTier), int64(input))
	c := Cost{ModelID: m.ID, ServiceTier: unit.UsedTier, ContextTier: threshold}
	p := func(f catalog.Field, n uint64) part { return part{n, unit.Femto[f], unit.Has[f]} }

	cacheRead := count(u.CacheReadInputTokens)
	cacheWrite1h := count(u.CacheWrite1hInputTokens)
	cacheWrite12h := count(u.CacheWrite12hInputTokens)
	cacheWrite5m := sub(count(u.CacheWriteInputTokens), cacheWrite1h, cacheWrite12h)
	cacheWriteAll := cacheWrite5m + cacheWrite1h + cacheWrite12h
	audioInput := count(u.AudioInputTokens)
	var imageInput uint64
	if unit.Has[catalog.ImageInput] {
		imageInput = count(u.ImageInputTokens)
	}
	var videoInput uint64
	if unit.Has[catalog.VideoInput] {
		videoInput = count(u.VideoInputTokens)
	}
	// Cached audio: as reported, or at least the overlap the totals force (the cache holds text
	// first), at most min(cacheRead, audioInput) (otel_ai_cost.cost).
	cachedAudio := count(u.CacheReadAudioInputTokens)
	if sum := cacheRead + cacheWriteAll + audioInput + imageInput + videoInput; sum > input && sum-input > cachedAudio {
		cachedAudio = sum - input
	}
	cachedAudio = min(cachedAudio, cacheRead, audioInput)
	textInput := sub(input, cacheRead, cacheWriteAll, audioInput-cachedAudio, imageInput, videoInput)

	output := count(u.OutputTokens)
	reasoning := count(u.ReasoningOutputTokens)
	audioOutput := count(u.AudioOutputTokens)
	var imageOutput uint64
	if unit.Has[catalog.ImageOutput] {
		imageOutput = count(u.ImageOutputTokens)
	}
	textOutput := sub(output, reasoning, audioOutput, imageOutput)

	c.charge(Input, p(catalog.Input, textInput), p(catalog.ImageInput, imageInput), p(catalog.VideoInput, videoInput))
	if cacheRead > cachedAudio {
		c.charge(CacheRead, p(catalog.CacheRead, cacheRead-cachedAudio))
	}
	if cachedAudio > 0 {
		c.charge(CacheReadAudio, p(catalog.CacheReadAudio, cachedAudio))
	}
	if cacheWriteAll > 0 {
		c.charge(CacheWrite, p(catalog.CacheWrite, cacheWrite5m), p(catalog.CacheWrite1h, cacheWrite1h),
			p(catalog.CacheWrite12h, cacheWrite12h))
	}
	c.charge(Output, p(catalog.Output, textOutput))
	if reasoning > 0 {
		c.charge(Reasoning, p(catalog.Reasoning, reasoning))
	}
	if audioInput > cachedAudio {
		c.charge(AudioInput, p(catalog.AudioInput, audioInput-cachedAudio))
	}
	if audioOutput > 0 {
		c.charge(AudioOutput, p(catalog.AudioOutput, audioOutput))
	}
	images := count(u.Images)
	if images > 0 || imageOutput > 0 {
		c.charge(Image, p(catalog.PerImage, images), p(catalog.ImageOutput, imageOutput))
	}
	if unit.Has[catalog.PerRequest] {
		c.charge(Request, p(catalog.PerRequest, count(u.Requests)))
	}
	if searches := count(u.WebSearchRequests); searches > 0 {
		c.charge(WebSearch, p(catalog.WebSearch, searches))
	}
	return c
}

// Status is the ai_cost.pricing.status of a computed cost: "unpriced" when the catalog prices
// none of the usage (never a silent $0), "partial" when some of it, else "priced".
func (c *Cost) Status() string {
	switch {
	case c.AnyUnpriced && c.Total.IsZero():
		return "unpriced"
	case c.AnyUnpriced:
		return "partial"
	}
	return "priced"
}
