package aicostprocessor

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/anomaly/scenariotest"
	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/metadata"
)

func TestAnomalyConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Anomalies
	if a.Enabled || a.MaxKeys != 10000 || a.MaxTraces != 10000 || a.MaxFingerprints != 20000 || a.TraceIdle != 5*time.Minute ||
		a.MaxTraceCalls != 0 || a.MaxTraceCost != 0 || strings.Join(a.Dimensions, ",") != "gen_ai.prompt.name,tenant.id,enduser.id,service.name" {
		t.Fatalf("defaults: %+v", a)
	}
	cfg, err = loadConfig(t, "anomalies")
	if err != nil {
		t.Fatal(err)
	}
	a = cfg.Anomalies
	if !a.Enabled || a.MaxTraceCalls != 40 || a.MaxTraceCost != 2.5 || a.MaxKeys != 500 || a.MaxTraces != 10000 ||
		a.TraceIdle != 2*time.Minute || strings.Join(a.Dimensions, ",") != "tenant.id,service.name" {
		t.Fatalf("custom: %+v", a)
	}
	_, err = loadConfig(t, "bad_anomalies")
	for _, want := range []string{
		"anomalies.max_trace_calls: -1 is negative (0 = no cap)",
		"anomalies.max_traces: 0 must be at least 1",
		"anomalies.trace_idle: 0s must be positive",
		`anomalies.dimensions[1]: "tenant.id" is listed twice`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad anomalies: %v, want %q", err, want)
		}
	}
}

// scenarioBatches makes the scenario's calls into spans: batches of `size` calls, one resource per
// service (service.name on the resource, the other dimensions on the span), shuffled within the
// batch (the processor feeds them in span end order). Span names are the call indexes.
func scenarioBatches(t *testing.T, h scenariotest.Header, calls []scenariotest.Call, size int) []ptrace.Traces {
	rng := rand.New(rand.NewSource(1))
	var out []ptrace.Traces
	for start := 0; start < len(calls); start += size {
		td := ptrace.NewTraces()
		resources := map[string]ptrace.SpanSlice{}
		idx := rng.Perm(min(size, len(calls)-start))
		for _, j := range idx {
			n := start + j
			c := &calls[n]
			service := ""
			for i, d := range h.Dimensions {
				if d == "service.name" && c.D[i] != nil {
					service = *c.D[i]
				}
			}
			ss, ok := resources[service]
			if !ok {
				rs := td.ResourceSpans().AppendEmpty()
				if service != "" {
					rs.Resource().Attributes().PutStr("service.name", service)
				}
				ss = rs.ScopeSpans().AppendEmpty().Spans()
				resources[service] = ss
			}
			span := ss.AppendEmpty()
			span.SetName(strconv.Itoa(n))
			span.SetKind(ptrace.SpanKindClient)
			var tid pcommon.TraceID
			if _, err := hex.Decode(tid[:], []byte(c.Trace)); err != nil {
				t.Fatalf("call %d trace %q: %v", n, c.Trace, err)
			}
			span.SetTraceID(tid)
			span.SetSpanID(pcommon.SpanID{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 1})
			ms := int64(math.Round(c.T * 1000))
			span.SetEndTimestamp(pcommon.Timestamp(ms * 1e6))
			span.SetStartTimestamp(pcommon.Timestamp(ms*1e6 - 5e8))
			a := span.Attributes()
			a.PutStr("gen_ai.operation.name", "chat")
			a.PutStr("gen_ai.provider.name", "openai")
			a.PutStr("gen_ai.request.model", c.Model)
			for i, d := range h.Dimensions {
				if d != "service.name" && c.D[i] != nil {
					a.PutStr(d, *c.D[i])
				}
			}
			if c.In != nil {
				a.PutInt("gen_ai.usage.input_tokens", *c.In)
			} else if c.Est != nil {
				a.PutInt("ai_cost.estimate.input_tokens", *c.Est)
			}
			if c.Out != nil {
				a.PutInt("gen_ai.usage.output_tokens", *c.Out)
			}
			if c.Cost != nil { // the scenario's cost, kept (override: never)
				a.PutDouble("gen_ai.usage.cost.amount", *c.Cost)
				a.PutStr("gen_ai.usage.cost.source", "provider")
			}
			if c.Err != 0 {
				a.PutStr("error.type", "429")
				span.Status().SetCode(ptrace.StatusCodeError)
			}
		}
		out = append(out, td)
	}
	return out
}

func anomalyProcessorConfig(t *testing.T, h scenariotest.Header) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Anomalies.Enabled = true
	for k, v := range h.Detector {
		switch k {
		case "max_trace_calls":
			cfg.Anomalies.MaxTraceCalls = int(v)
		case "max_trace_cost":
			cfg.Anomalies.MaxTraceCost = v
		case "max_keys":
			cfg.Anomalies.MaxKeys = int(v)
		case "max_traces":
			cfg.Anomalies.MaxTraces = int(v)
		case "max_fingerprints":
			cfg.Anomalies.MaxFingerprints = int(v)
		default:
			t.Fatalf("detector argument %s has no processor setting", k)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func attrStr(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}

func attrDouble(m pcommon.Map, k string) float64 {
	v, _ := m.Get(k)
	return v.Double()
}

// The scenarios sent as spans, in batches, through the processor: each span gets one
// ai_cost.anomaly event per finding the Python detector gave for that call (type, severity, cause,
// metric, key, score to 4 digits), its most severe finding as attributes, and the counter counts them.
func TestScenariosThroughTheProcessor(t *testing.T) {
	for _, name := range scenariotest.Names(t) {
		t.Run(name, func(t *testing.T) {
			h, calls := scenariotest.Read(t, name)
			tel := componenttest.NewTelemetry()
			defer func() { _ = tel.Shutdown(context.Background()) }()
			p, sink := newTestProcessor(t, anomalyProcessorConfig(t, h), tel)
			for _, td := range scenarioBatches(t, h, calls, 64) {
				if err := p.ConsumeTraces(context.Background(), td); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]ptrace.Span{}
			for _, td := range sink.AllTraces() {
				for name, s := range spansByName(td) {
					got[name] = s
				}
			}
			if len(got) != len(calls) {
				t.Fatalf("%d spans out, %d in", len(got), len(calls))
			}
			wantCount := map[string]int64{}
			bad := 0
			for n, c := range calls {
				span := got[strconv.Itoa(n)]
				var events []string
				for i := 0; i < span.Events().Len(); i++ {
					ev := span.Events().At(i)
					if ev.Name() != "ai_cost.anomaly" || ev.Timestamp() != span.EndTimestamp() {
						t.Fatalf("call %d: event %s at %v", n, ev.Name(), ev.Timestamp())
					}
					a := ev.Attributes()
					events = append(events, fmt.Sprintf("%s/%s/%s/%s/%s/%.4f", attrStr(a, "ai_cost.anomaly.type"),
						attrStr(a, "ai_cost.anomaly.severity"), attrStr(a, "ai_cost.anomaly.cause"),
						attrStr(a, "ai_cost.anomaly.metric"), attrStr(a, "ai_cost.anomaly.key"), attrDouble(a, "ai_cost.anomaly.score")))
				}
				var want []string
				top := -1
				rank := map[string]int{"info": 0, "warning": 1, "critical": 2}
				for i, f := range c.Findings {
					want = append(want, fmt.Sprintf("%s/%s/%s/%s/%s/%.4f", f.Type, f.Severity, f.Cause, f.Metric, f.Key, f.Score))
					wantCount[f.Type+"/"+f.Severity]++
					if top < 0 || rank[f.Severity] > rank[c.Findings[top].Severity] ||
						(rank[f.Severity] == rank[c.Findings[top].Severity] && f.Score > c.Findings[top].Score) {
						top = i
					}
				}
				if strings.Join(events, " ") != strings.Join(want, " ") {
					bad++
					t.Errorf("call %d (t=%v): events %v, want %v", n, c.T, events, want)
				}
				typ := attrStr(span.Attributes(), "ai_cost.anomaly.type")
				if top >= 0 && (typ != c.Findings[top].Type || attrStr(span.Attributes(), "ai_cost.anomaly.cause") != c.Findings[top].Cause) {
					t.Errorf("call %d: attributes %v, want the most severe finding %+v", n, span.Attributes().AsRaw(), c.Findings[top])
				}
				if top < 0 && typ != "" {
					t.Errorf("call %d: anomaly attributes without a finding: %v", n, span.Attributes().AsRaw())
				}
				if bad > 10 {
					t.Fatal("too many differences")
				}
			}
			if len(wantCount) == 0 {
				t.Fatal("the scenario has no finding")
			}
			m, err := tel.GetMetric(metadata.MetricAnomalies)
			if err != nil {
				t.Fatal(err)
			}
			gotCount := map[string]int64{}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				typ, _ := dp.Attributes.Value("ai_cost.anomaly.type")
				sev, _ := dp.Attributes.Value("ai_cost.anomaly.severity")
				gotCount[typ.AsString()+"/"+sev.AsString()] += dp.Value
			}
			if fmt.Sprint(gotCount) != fmt.Sprint(wantCount) {
				t.Errorf("counter %v, want %v", gotCount, wantCount)
			}
		})
	}
}

// Off by default: the same traffic leaves the spans without anomaly attributes or events.
func TestAnomaliesOffByDefault(t *testing.T) {
	h, calls := scenariotest.Read(t, "capped.jsonl")
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), nil)
	for _, td := range scenarioBatches(t, h, calls, 256) {
		if err := p.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, td := range sink.AllTraces() {
		for _, s := range spansByName(td) {
			n++
			if _, ok := s.Attributes().Get("ai_cost.anomaly.type"); ok || s.Events().Len() > 0 {
				t.Fatalf("span %s: %v", s.Name(), s.Attributes().AsRaw())
			}
		}
	}
	if n != len(calls) {
		t.Fatalf("%d spans", n)
	}
}

// Four identical requests (same model and input tokens) in one trace within 60 s are a retry
// storm on the fourth span; a finding an SDK already put on a span stays, ours is added as an event.
func TestRetryStormOnSpansAndTheSDKsFindingStays(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Anomalies.Enabled = true
	p, sink := newTestProcessor(t, cfg, nil)
	for _, sdk := range []bool{false, true} {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "billing")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		tid := pcommon.TraceID{1, 2, 3}
		if sdk {
			tid[15] = 1
		}
		base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		for i := 3; i >= 0; i-- { // out of order in the batch: fed by end time
			span := ss.AppendEmpty()
			span.SetName(strconv.Itoa(i))
			span.SetTraceID(tid)
			span.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i*5) * time.Second)))
			a := span.Attributes()
			a.PutStr("gen_ai.operation.name", "chat")
			a.PutStr("gen_ai.provider.name", "openai")
			a.PutStr("gen_ai.request.model", "gpt-4o")
			a.PutStr("error.type", "429")
			a.PutInt("ai_cost.estimate.input_tokens", 1234)
			if sdk && i == 3 {
				a.PutStr("ai_cost.anomaly.type", "error_spike")
			}
		}
		if err := p.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	all := sink.AllTraces()
	for n, sdk := range []bool{false, true} {
		got := spansByName(all[n])
		for i := 0; i < 3; i++ {
			if got[strconv.Itoa(i)].Events().Len() != 0 {
				t.Errorf("span %d: events %d", i, got[strconv.Itoa(i)].Events().Len())
			}
		}
		fourth := got["3"]
		if fourth.Events().Len() != 1 || attrStr(fourth.Events().At(0).Attributes(), "ai_cost.anomaly.type") != "retry_storm" {
			t.Fatalf("sdk=%v: events of the fourth span: %d", sdk, fourth.Events().Len())
		}
		ev := fourth.Events().At(0).Attributes()
		tidStr := all[n].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID().String()
		if attrStr(ev, "ai_cost.anomaly.cause") != "trace="+tidStr || attrStr(ev, "ai_cost.anomaly.severity") != "warning" ||
			attrDouble(ev, "ai_cost.anomaly.observed") != 4 || attrStr(ev, "ai_cost.anomaly.key") != "gpt-4o/trace="+tidStr ||
			attrDouble(ev, "ai_cost.anomaly.score") != 0.6321 { // 1 - exp(-4/4)
			t.Errorf("sdk=%v: event %v", sdk, ev.AsRaw())
		}
		want := "retry_storm"
		if sdk {
			want = "error_spike"
		}
		if typ := attrStr(fourth.Attributes(), "ai_cost.anomaly.type"); typ != want {
			t.Errorf("sdk=%v: span ai_cost.anomaly.type %q, want %q", sdk, typ, want)
		}
	}
}
