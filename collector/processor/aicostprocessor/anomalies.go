package aicostprocessor // import "github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/anomaly"
	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/spans"
)

// AnomalyConfig configures the anomaly detector (the rules of the Python detector,
// src/otel_ai_cost/anomalies/README.md): per (model, attribution key) cost, token, volume and
// error spikes, runaway traces, retry storms and new models, on every GenAI inference span.
type AnomalyConfig struct {
	// Enabled turns detection on (default false).
	Enabled bool `mapstructure:"enabled"`
	// MaxTraceCalls caps the learned calls-per-trace threshold of runaway_trace; 0: learned only
	// (50 until 200 traces of a trace key are known, then 2x their 99.9th percentile, at least 15).
	MaxTraceCalls int `mapstructure:"max_trace_calls"`
	// MaxTraceCost caps the learned cost-per-trace threshold (USD); 0: learned only.
	MaxTraceCost float64 `mapstructure:"max_trace_cost"`
	// Dimensions: the attribution attributes baselines are kept for (resource attributes win), in
	// root-cause tie-break order.
	Dimensions []string `mapstructure:"dimensions"`
	// MaxKeys bounds the (model, dimension, value) keys with baselines (and the new-model and
	// trace-size tables); the least recent are evicted.
	MaxKeys int `mapstructure:"max_keys"`
	// MaxTraces bounds the open traces; the oldest are closed first.
	MaxTraces int `mapstructure:"max_traces"`
	// MaxFingerprints bounds the (request, trace) pairs watched for retry storms.
	MaxFingerprints int `mapstructure:"max_fingerprints"`
	// TraceIdle: a trace without a call for this long (by span end times) is finished and feeds the
	// learned trace sizes.
	TraceIdle time.Duration `mapstructure:"trace_idle"`

	_ struct{}
}

func defaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{
		Dimensions:      append([]string(nil), anomaly.DefaultDimensions...),
		MaxKeys:         anomaly.MaxKeys,
		MaxTraces:       anomaly.MaxTraces,
		MaxFingerprints: anomaly.MaxFingerprints,
		TraceIdle:       time.Duration(anomaly.TraceIdle) * time.Second,
	}
}

// validate checks the anomaly settings, also when detection is off, so a typo fails at start; each
// error names its key (Config.Validate calls it: a Validate method here would be called by the
// collector too, and report every error twice).
func (c *AnomalyConfig) validate() error {
	var errs []error
	if c.MaxTraceCalls < 0 {
		errs = append(errs, fmt.Errorf("anomalies.max_trace_calls: %d is negative (0 = no cap)", c.MaxTraceCalls))
	}
	if c.MaxTraceCost < 0 || math.IsNaN(c.MaxTraceCost) || math.IsInf(c.MaxTraceCost, 0) {
		errs = append(errs, fmt.Errorf("anomalies.max_trace_cost: %v is not a non-negative number of USD (0 = no cap)", c.MaxTraceCost))
	}
	for name, v := range map[string]int{"max_keys": c.MaxKeys, "max_traces": c.MaxTraces, "max_fingerprints": c.MaxFingerprints} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("anomalies.%s: %d must be at least 1", name, v))
		}
	}
	if c.TraceIdle <= 0 {
		errs = append(errs, fmt.Errorf("anomalies.trace_idle: %v must be positive (e.g. 5m)", c.TraceIdle))
	}
	if len(c.Dimensions) == 0 {
		errs = append(errs, errors.New("anomalies.dimensions: at least one attribute name (default gen_ai.prompt.name, tenant.id, enduser.id, service.name)"))
	}
	seen := map[string]bool{}
	for i, d := range c.Dimensions {
		switch {
		case d == "":
			errs = append(errs, fmt.Errorf("anomalies.dimensions[%d]: empty attribute name", i))
		case seen[d]:
			errs = append(errs, fmt.Errorf("anomalies.dimensions[%d]: %q is listed twice", i, d))
		}
		seen[d] = true
	}
	return errors.Join(errs...)
}

func (c *AnomalyConfig) options() anomaly.Options {
	return anomaly.Options{
		Dimensions: c.Dimensions, MaxKeys: c.MaxKeys, MaxTraces: c.MaxTraces, MaxFingerprints: c.MaxFingerprints,
		TraceIdle: c.TraceIdle.Seconds(), MaxTraceCalls: c.MaxTraceCalls, MaxTraceCost: c.MaxTraceCost,
	}
}

// Attribute and event names of semconv/anomaly.yaml.
const (
	attrAnomalyType     = "ai_cost.anomaly.type"
	attrAnomalySeverity = "ai_cost.anomaly.severity"
	attrAnomalyScore    = "ai_cost.anomaly.score"
	attrAnomalyCause    = "ai_cost.anomaly.cause"
	attrAnomalyShare    = "ai_cost.anomaly.cause_share"
	attrAnomalyMetric   = "ai_cost.anomaly.metric"
	attrAnomalyObserved = "ai_cost.anomaly.observed"
	attrAnomalyBaseline = "ai_cost.anomaly.baseline"
	attrAnomalyKey      = "ai_cost.anomaly.key"
	eventAnomaly        = "ai_cost.anomaly"
	attrEstimateInput   = "ai_cost.estimate.input_tokens"
	attrErrorType       = "error.type"
)

// watcher feeds the detector and writes its findings on the spans.
type watcher struct {
	det    *anomaly.Detector
	dims   []string
	logger *zap.Logger
	count  metric.Int64Counter
	sets   map[[2]string]metric.AddOption
}

func newWatcher(cfg *AnomalyConfig, meter metric.Meter, logger *zap.Logger, name string) (*watcher, error) {
	w := &watcher{det: anomaly.New(cfg.options()), dims: cfg.Dimensions, logger: logger, sets: map[[2]string]metric.AddOption{}}
	var err error
	if w.count, err = meter.Int64Counter(name, metric.WithUnit("{finding}"),
		metric.WithDescription("Anomaly findings of the ai_cost processor, by ai_cost.anomaly.type and ai_cost.anomaly.severity.")); err != nil {
		return nil, err
	}
	for _, t := range anomaly.Types {
		for _, s := range []string{"info", "warning", "critical"} {
			w.sets[[2]string{t, s}] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String(attrAnomalyType, t), attribute.String(attrAnomalySeverity, s)))
		}
	}
	return w, nil
}

// call is one inference span of a batch, waiting to be fed in span end order.
type call struct {
	span ptrace.Span
	rec  anomaly.Record
}

// record builds the detector's record of an inference span (after pricing), false when the span
// names no model or has no time.
func (w *watcher) record(span ptrace.Span, resource pcommon.Map, f *spans.Facts) (anomaly.Record, bool) {
	attrs := span.Attributes()
	var r anomaly.Record
	for _, m := range [...]string{f.Models[1], f.Models[0], f.Models[3], f.Models[2], f.Models[4]} { // request model first, as the Python CallRecord
		if m != "" {
			r.Model = m
			break
		}
	}
	end := span.EndTimestamp()
	if end == 0 {
		end = span.StartTimestamp()
	}
	if r.Model == "" || end == 0 {
		return r, false
	}
	r.Time = float64(end/1e9) + float64(end%1e9)/1e9
	if !span.TraceID().IsEmpty() {
		r.TraceID = span.TraceID().String()
	}
	for _, d := range w.dims {
		v, ok := resource.Get(d)
		if !ok {
			v, ok = attrs.Get(d)
		}
		if ok {
			if s := v.AsString(); s != "" {
				r.Dims = append(r.Dims, anomaly.Dim{Name: d, Value: s})
			}
		}
	}
	if v, ok := attrs.Get(attrAmount); ok {
		switch v.Type() {
		case pcommon.ValueTypeDouble:
			r.Cost = v.Double()
		case pcommon.ValueTypeInt:
			r.Cost = float64(v.Int())
		}
		if r.Cost < 0 || math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) {
			r.Cost = 0
		}
	}
	if f.HasUsage {
		r.InputTokens, r.OutputTokens = f.Usage.InputTokens, f.Usage.OutputTokens
	}
	if v, ok := attrs.Get(attrEstimateInput); ok {
		if n, good := spans.Count(v); good {
			r.EstimatedInputTokens = n
		}
	}
	_, hasErr := attrs.Get(attrErrorType)
	r.Error = hasErr || span.Status().Code() == ptrace.StatusCodeError
	return r, true
}

// observe feeds a batch's calls in span end order and writes the findings on their spans.
func (w *watcher) observe(ctx context.Context, calls []call) {
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].rec.Time < calls[j].rec.Time })
	for i := range calls {
		c := &calls[i]
		findings := w.det.Observe(&c.rec)
		if len(findings) == 0 {
			continue
		}
		attrs := c.span.Attributes()
		if _, fromSDK := attrs.Get(attrAnomalyType); !fromSDK { // an SDK's finding stays; ours are added as events
			putFinding(attrs, anomaly.MostSevere(findings))
		}
		for j := range findings {
			f := &findings[j]
			ev := c.span.Events().AppendEmpty()
			ev.SetName(eventAnomaly)
			ev.SetTimestamp(c.span.EndTimestamp())
			putFinding(ev.Attributes(), f)
			w.count.Add(ctx, 1, w.sets[[2]string{f.Type, f.Severity}])
			w.logger.Info("ai_cost anomaly", zap.String("type", f.Type), zap.String("severity", f.Severity),
				zap.Float64("score", anomaly.Round4(f.Score)), zap.String("cause", f.Cause.String()),
				zap.String("metric", f.Metric), zap.Float64("observed", f.Observed), zap.Float64("baseline", f.Baseline),
				zap.String("key", f.Key), zap.String("trace_id", f.TraceID), zap.String("model", f.Model))
		}
	}
}

func putFinding(m pcommon.Map, f *anomaly.Finding) {
	m.PutStr(attrAnomalyType, f.Type)
	m.PutStr(attrAnomalySeverity, f.Severity)
	m.PutDouble(attrAnomalyScore, anomaly.Round4(f.Score))
	m.PutStr(attrAnomalyCause, f.Cause.String())
	m.PutDouble(attrAnomalyShare, anomaly.Round4(f.Cause.Share))
	m.PutStr(attrAnomalyMetric, f.Metric)
	m.PutDouble(attrAnomalyObserved, f.Observed)
	m.PutDouble(attrAnomalyBaseline, f.Baseline)
	m.PutStr(attrAnomalyKey, f.Key)
}
