package cost

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/catalog"
)

// The shared vectors of the Python package, read in place (one file for both engines).
var vectorsFile = filepath.Join("..", "..", "..", "..", "..", "tests", "vectors", "cost_vectors.json")

type vector struct {
	Name        string           `json:"name"`
	Provider    string           `json:"provider"`
	Model       string           `json:"model"`
	ServiceTier *string          `json:"service_tier"`
	At          string           `json:"at"` // RFC 3339 start time of the call, for dated prices
	Usage       map[string]int64 `json:"usage"`
	Expected    struct {
		Status       string            `json:"status"`
		Total        string            `json:"total"`
		Breakdown    map[string]string `json:"breakdown"`
		PricingModel string            `json:"pricing_model"`
		ServiceTier  json.RawMessage   `json:"service_tier"`
		ContextTier  *int64            `json:"context_tier"`
	} `json:"expected"`
	KnownCatalogGap bool `json:"known_catalog_gap"`
}

func loadVectors(t testing.TB) []vector {
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("shared vectors: %v", err)
	}
	var doc struct {
		Cases []vector `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", vectorsFile, err)
	}
	if len(doc.Cases) < 60 {
		t.Fatalf("%s: only %d cases", vectorsFile, len(doc.Cases))
	}
	return doc.Cases
}

// UsageFromVector maps the vector file's usage keys (otel_ai_cost.cost.Usage fields).
func usageFromVector(t testing.TB, name string, raw map[string]int64) Usage {
	u := Usage{Requests: 1}
	fields := map[string]*int64{
		"input_tokens": &u.InputTokens, "output_tokens": &u.OutputTokens,
		"cache_read_input_tokens": &u.CacheReadInputTokens, "cache_write_input_tokens": &u.CacheWriteInputTokens,
		"cache_write_1h_input_tokens": &u.CacheWrite1hInputTokens, "cache_write_12h_input_tokens": &u.CacheWrite12hInputTokens, "reasoning_output_tokens": &u.ReasoningOutputTokens,
		"audio_input_tokens": &u.AudioInputTokens, "cache_read_audio_input_tokens": &u.CacheReadAudioInputTokens, "audio_output_tokens": &u.AudioOutputTokens,
		"image_input_tokens": &u.ImageInputTokens, "video_input_tokens": &u.VideoInputTokens, "image_output_tokens": &u.ImageOutputTokens,
		"images": &u.Images, "requests": &u.Requests, "web_search_requests": &u.WebSearchRequests,
	}
	for k, v := range raw {
		p, ok := fields[k]
		if !ok {
			t.Fatalf("%s: unknown usage key %q", name, k)
		}
		*p = v
	}
	return u
}

func disagreements(t *testing.T, cat *catalog.Catalog, v vector) []string {
	var problems []string
	m := cat.Resolve(v.Model, v.Provider)
	if v.Expected.Status == "unknown_model" {
		if m != nil {
			problems = append(problems, "expected unknown_model, resolved to "+m.Provider+"/"+m.ID)
		}
		return problems
	}
	if m == nil {
		return []string{"model " + v.Model + " (" + v.Provider + ") is not in the catalog"}
	}
	// Dated prices: the period in force on the call's UTC day, as the processor picks it from the
	// span's start time (no time: now).
	var start uint64
	if v.At != "" {
		at, err := time.Parse(time.RFC3339, v.At)
		if err != nil {
			t.Fatalf("%s: bad at %q: %v", v.Name, v.At, err)
		}
		start = uint64(at.UnixNano())
	}
	m = m.At(catalog.Day(start))
	tier := ""
	if v.ServiceTier != nil {
		tier = *v.ServiceTier
	}
	u := usageFromVector(t, v.Name, v.Usage)
	c := Compute(&u, m, tier)
	want, ok := ParseAmount(v.Expected.Total)
	if !ok {
		t.Fatalf("%s: bad total %q", v.Name, v.Expected.Total)
	}
	if c.Total != want {
		problems = append(problems, "total "+c.Total.String()+" != "+v.Expected.Total)
	}
	// The double on the span is the correctly rounded value of the exact total: bit for bit.
	wantFloat, _ := strconv.ParseFloat(v.Expected.Total, 64)
	if got := c.Total.Float64(); math.Float64bits(got) != math.Float64bits(wantFloat) {
		problems = append(problems, "amount double "+strconv.FormatFloat(got, 'g', -1, 64)+" != "+strconv.FormatFloat(wantFloat, 'g', -1, 64))
	}
	for i := Component(0); i < NumComponents; i++ {
		exp, listed := v.Expected.Breakdown[ComponentNames[i]]
		if listed != c.Has[i] {
			problems = append(problems, "component "+ComponentNames[i]+" presence differs")
			continue
		}
		if listed {
			a, _ := ParseAmount(exp)
			if a != c.Breakdown[i] {
				problems = append(problems, ComponentNames[i]+" "+c.Breakdown[i].String()+" != "+exp)
			}
			f, _ := strconv.ParseFloat(exp, 64)
			if c.Breakdown[i].Float64() != f {
				problems = append(problems, ComponentNames[i]+" double differs")
			}
		}
	}
	if c.ModelID != v.Expected.PricingModel {
		problems = append(problems, "pricing model "+c.ModelID+" != "+v.Expected.PricingModel)
	}
	wantCtx := int64(-1)
	if v.Expected.ContextTier != nil {
		wantCtx = *v.Expected.ContextTier
	}
	if c.ContextTier != wantCtx {
		problems = append(problems, "context tier "+strconv.FormatInt(c.ContextTier, 10)+" != "+strconv.FormatInt(wantCtx, 10))
	}
	if len(v.Expected.ServiceTier) > 0 {
		var st *string
		_ = json.Unmarshal(v.Expected.ServiceTier, &st)
		wantTier := ""
		if st != nil {
			wantTier = *st
		}
		if c.ServiceTier != wantTier {
			problems = append(problems, "service tier "+c.ServiceTier+" != "+wantTier)
		}
	}
	status := v.Expected.Status
	if status == "" {
		status = "priced"
	}
	if c.Status() != status {
		problems = append(problems, "status "+c.Status()+" != "+status)
	}
	return problems
}

func TestSharedVectors(t *testing.T) {
	cat, err := catalog.Load(nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	gaps := 0
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			problems := disagreements(t, cat, v)
			if v.KnownCatalogGap {
				gaps++
				if len(problems) == 0 {
					t.Fatalf("the catalog now agrees with the list price; remove known_catalog_gap from %s", v.Name)
				}
				return
			}
			if len(problems) > 0 {
				t.Fatalf("%v", problems)
			}
		})
	}
	t.Logf("%d known catalog gaps still disagree", gaps)
}

func TestDatedVectorsPriceByDay(t *testing.T) {
	// The same model and usage cost differently by the call's day: at least one dated vector must
	// disagree with the prices in force today, or the test of the day's period proves nothing.
	cat, err := catalog.Load(nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for _, v := range loadVectors(t) {
		if v.At == "" || v.Expected.Status != "" {
			continue
		}
		m := cat.Resolve(v.Model, v.Provider)
		u := usageFromVector(t, v.Name, v.Usage)
		tier := ""
		if v.ServiceTier != nil {
			tier = *v.ServiceTier
		}
		want, _ := ParseAmount(v.Expected.Total)
		if c := Compute(&u, m.At(catalog.Day(0)), tier); c.Total != want {
			differ++
		}
	}
	if differ < 5 {
		t.Fatalf("only %d dated vectors differ from today's prices", differ)
	}
}

func TestAmountFloatAndString(t *testing.T) {
	for _, s := range []string{"0", "0.00672", "1", "123456.789012345678901"[:20], "0.000000000000001", "18446744.073709551615"} {
		a, ok := ParseAmount(s)
		if !ok {
			t.Fatalf("parse %q", s)
		}
		want, _ := strconv.ParseFloat(s, 64)
		if a.Float64() != want {
			t.Errorf("%s: float %v != %v", s, a.Float64(), want)
		}
		b, _ := ParseAmount(a.String())
		if a != b {
			t.Errorf("%s: string round trip %s", s, a.String())
		}
	}
	// A total past 2^53 femto-dollars with 15 significant digits still rounds correctly.
	big := mul(1<<40, 1234567891)
	want, _ := strconv.ParseFloat(big.String(), 64)
	if big.Float64() != want {
		t.Errorf("big: %v != %v", big.Float64(), want)
	}
}
