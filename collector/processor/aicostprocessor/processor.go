package aicostprocessor // import "github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor"

import (
	"context"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/catalog"
	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/cost"
	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/metadata"
	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/spans"
)

// Attribute names written (the GenAI conventions' proposed cost names, and ours in semconv/).
const (
	attrAmount        = "gen_ai.usage.cost.amount"
	attrCurrency      = "gen_ai.usage.cost.currency"
	attrSource        = "gen_ai.usage.cost.source"
	attrStatus        = "ai_cost.pricing.status"
	attrCatalog       = "ai_cost.pricing.catalog_version"
	attrPricingModel  = "ai_cost.pricing.model"
	attrServiceTier   = "ai_cost.pricing.service_tier"
	attrContextTier   = "ai_cost.pricing.context_tier"
	costAttrPrefix    = "ai_cost.cost."
	pricingAttrPrefix = "ai_cost.pricing."
)

var componentAttrs = func() (out [cost.NumComponents]string) {
	for i, name := range cost.ComponentNames {
		out[i] = costAttrPrefix + name
	}
	return out
}()

// Outcomes counted by the processor's own telemetry (the "outcome" attribute).
type outcome int

const (
	outPriced outcome = iota
	outPartial
	outUnpriced
	outUnknownModel
	outNoUsage
	outKept
	outNotInference
	outPricedElsewhere
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"priced", "partial", "unpriced", "unknown_model", "no_usage", "kept", "not_inference", "priced_elsewhere"}

type pricer struct {
	cfg     *Config
	catalog *catalog.Catalog
	logger  *zap.Logger

	anomalies *watcher // nil when anomaly detection is off

	spans metric.Int64Counter
	usd   metric.Float64Counter
	// Attribute sets prepared at start: [outcome][malformed].
	sets [numOutcomes][2]metric.AddOption
}

func newPricer(cfg *Config, set component.TelemetrySettings) (*pricer, error) {
	cat, err := cfg.loadCatalog()
	if err != nil {
		return nil, err
	}
	p := &pricer{cfg: cfg, catalog: cat, logger: set.Logger}
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	if p.spans, err = meter.Int64Counter(metadata.MetricSpans, metric.WithUnit("{span}"),
		metric.WithDescription("GenAI spans seen by the ai_cost processor, by outcome and whether their usage attributes were malformed.")); err != nil {
		return nil, err
	}
	if p.usd, err = meter.Float64Counter(metadata.MetricUSD, metric.WithUnit("{USD}"),
		metric.WithDescription("Cost the ai_cost processor added to spans, in USD.")); err != nil {
		return nil, err
	}
	for o := outcome(0); o < numOutcomes; o++ {
		for m := 0; m < 2; m++ {
			p.sets[o][m] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("outcome", outcomeNames[o]), attribute.Bool("malformed_usage", m == 1)))
		}
	}
	if cfg.Anomalies.Enabled {
		if p.anomalies, err = newWatcher(&cfg.Anomalies, meter, set.Logger, metadata.MetricAnomalies); err != nil {
			return nil, err
		}
	}
	set.Logger.Info("ai_cost processor ready", zap.String("catalog_version", cat.Version),
		zap.Int("models", cat.Len()), zap.String("override", string(cfg.Override)))
	return p, nil
}

// tally is one batch's counts, added to the counters once per batch.
type tally struct {
	n   [numOutcomes][2]int64
	usd float64
}

func (p *pricer) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	var t tally
	var f spans.Facts
	var calls []call // inference spans for the anomaly detector
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				span := ss.At(k)
				p.priceSpan(span.Attributes(), span.StartTimestamp(), &f, &t)
				// Every model call once (not an aggregate, not a span whose call is priced on another).
				if p.anomalies != nil && f.Kind == spans.Inference && !f.PricedOn {
					if rec, ok := p.anomalies.record(span, rss.At(i).Resource().Attributes(), &f); ok {
						calls = append(calls, call{span, rec})
					}
				}
			}
		}
	}
	if len(calls) > 0 {
		p.anomalies.observe(ctx, calls)
	}
	for o := outcome(0); o < numOutcomes; o++ {
		for m := 0; m < 2; m++ {
			if t.n[o][m] > 0 {
				p.spans.Add(ctx, t.n[o][m], p.sets[o][m])
			}
		}
	}
	if t.usd > 0 {
		p.usd.Add(ctx, t.usd)
	}
	return td, nil
}

// priceSpan adds the cost attributes to one span's attributes, at the prices in force at the span's
// start; the outcome goes to t.
func (p *pricer) priceSpan(attrs pcommon.Map, start pcommon.Timestamp, f *spans.Facts, t *tally) {
	spans.Read(attrs, f)
	malformed := 0
	if f.Malformed {
		malformed = 1
	}
	switch f.Kind {
	case spans.NotGenAI:
		return
	case spans.Aggregate:
		t.n[outNotInference][malformed]++
		return
	}
	if f.PricedOn { // the call's cost is on the span it names: left as it is
		t.n[outPricedElsewhere][malformed]++
		return
	}
	if f.HasAmount && !p.recompute(f.Source) {
		t.n[outKept][malformed]++
		return
	}
	if f.HasAmount || f.HasOurs {
		removeCostAttributes(attrs)
	}
	if !f.HasUsage {
		attrs.PutStr(attrStatus, "no_usage")
		t.n[outNoUsage][malformed]++
		return
	}
	var model *catalog.Model
	for _, name := range f.Models {
		if name != "" {
			if model = p.catalog.Resolve(name, f.Provider); model != nil {
				break
			}
		}
	}
	if model == nil {
		attrs.PutStr(attrStatus, "unknown_model")
		attrs.PutStr(attrCatalog, p.catalog.Version)
		t.n[outUnknownModel][malformed]++
		return
	}
	if len(model.History) > 0 {
		model = model.At(catalog.Day(uint64(start)))
	}
	c := cost.Compute(&f.Usage, model, f.Tier)
	status := c.Status()
	if status == "unpriced" {
		attrs.PutStr(attrStatus, status)
		attrs.PutStr(attrCatalog, p.catalog.Version)
		attrs.PutStr(attrPricingModel, c.ModelID)
		t.n[outUnpriced][malformed]++
		return
	}
	amount := c.Total.Float64()
	attrs.EnsureCapacity(attrs.Len() + 8 + int(cost.NumComponents)) // one growth, not one per attribute
	attrs.PutDouble(attrAmount, amount)
	attrs.PutStr(attrCurrency, "USD")
	attrs.PutStr(attrSource, "local")
	for i := cost.Component(0); i < cost.NumComponents; i++ {
		if c.Has[i] {
			attrs.PutDouble(componentAttrs[i], c.Breakdown[i].Float64())
		}
	}
	attrs.PutStr(attrStatus, status)
	attrs.PutStr(attrCatalog, p.catalog.Version)
	attrs.PutStr(attrPricingModel, c.ModelID)
	if c.ServiceTier != "" {
		attrs.PutStr(attrServiceTier, c.ServiceTier)
	}
	if c.ContextTier >= 0 {
		attrs.PutInt(attrContextTier, c.ContextTier)
	}
	if status == "partial" {
		t.n[outPartial][malformed]++
	} else {
		t.n[outPriced][malformed]++
	}
	t.usd += amount
}

func (p *pricer) recompute(source string) bool {
	switch p.cfg.Override {
	case OverrideAlways:
		return true
	case OverrideLocalOnly:
		return source == "local"
	}
	return false
}

// removeCostAttributes drops a previous computation before a new one.
func removeCostAttributes(attrs pcommon.Map) {
	attrs.RemoveIf(func(k string, _ pcommon.Value) bool {
		return k == attrAmount || k == attrCurrency || k == attrSource ||
			strings.HasPrefix(k, costAttrPrefix) || strings.HasPrefix(k, pricingAttrPrefix)
	})
}
