package aicostprocessor

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/spans_out.json from the processor's output")

type inputSpan struct {
	Name       string         `json:"name"`
	TwinOf     string         `json:"twin_of"`
	Attributes map[string]any `json:"attributes"`
}

type inputFile struct {
	AzureDeployments map[string]string `json:"azure_deployments"`
	Spans            []inputSpan       `json:"spans"`
}

func readInput(t testing.TB, path string) inputFile {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var in inputFile
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return in
}

// putJSON sets a typed attribute: JSON integer -> int, number with a point -> double.
func putJSON(t testing.TB, m pcommon.Map, k string, v any) {
	switch x := v.(type) {
	case string:
		m.PutStr(k, x)
	case bool:
		m.PutBool(k, x)
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			f, _ := x.Float64()
			m.PutDouble(k, f)
		} else {
			i, _ := x.Int64()
			m.PutInt(k, i)
		}
	default:
		t.Fatalf("attribute %s: unsupported value %v", k, v)
	}
}

// buildTraces makes one resource per span, so the test also covers many resources per batch.
func buildTraces(t testing.TB, in []inputSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	for i, s := range in {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", i%3))
		span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		span.SetName(s.Name)
		span.SetKind(ptrace.SpanKindClient)
		for k, v := range s.Attributes {
			putJSON(t, span.Attributes(), k, v)
		}
	}
	return td
}

func spansByName(td ptrace.Traces) map[string]ptrace.Span {
	out := map[string]ptrace.Span{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				out[ss.At(k).Name()] = ss.At(k)
			}
		}
	}
	return out
}

func newTestProcessor(t testing.TB, cfg *Config, tel *componenttest.Telemetry) (processor.Traces, *consumertest.TracesSink) {
	sink := new(consumertest.TracesSink)
	set := processortest.NewNopSettings(metadata.Type)
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	p, err := NewFactory().CreateTraces(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, sink
}

func isCostKey(k string) bool {
	return strings.HasPrefix(k, "gen_ai.usage.cost.") || strings.HasPrefix(k, "ai_cost.cost.") || strings.HasPrefix(k, "ai_cost.pricing.")
}

func costAttrs(m pcommon.Map) map[string]any {
	out := map[string]any{}
	for k, v := range m.All() {
		if isCostKey(k) {
			out[k] = v.AsRaw()
		}
	}
	return out
}

func TestGoldenSpans(t *testing.T) {
	in := readInput(t, filepath.Join("testdata", "golden", "spans_in.json"))
	cfg := createDefaultConfig().(*Config)
	cfg.AzureDeployments = in.AzureDeployments
	tel := componenttest.NewTelemetry()
	defer func() { _ = tel.Shutdown(context.Background()) }()
	p, sink := newTestProcessor(t, cfg, tel)
	if err := p.ConsumeTraces(context.Background(), buildTraces(t, in.Spans)); err != nil {
		t.Fatal(err)
	}
	got := spansByName(sink.AllTraces()[0])

	out := map[string]map[string]any{}
	for _, s := range in.Spans {
		out[s.Name] = got[s.Name].Attributes().AsRaw()
	}
	goldenPath := filepath.Join("testdata", "golden", "spans_out.json")
	if *update {
		data, _ := json.MarshalIndent(out, "", " ")
		if err := os.WriteFile(goldenPath, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenSpans -update once, then review the file)", err)
	}
	var want map[string]map[string]any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, s := range in.Spans {
		gotAttrs := normalise(out[s.Name])
		if !reflect.DeepEqual(gotAttrs, want[s.Name]) {
			t.Errorf("%s:\n got  %v\n want %v", s.Name, gotAttrs, want[s.Name])
		}
	}

	// The same call under every naming scheme gets the same cost.
	for _, s := range in.Spans {
		if s.TwinOf == "" {
			continue
		}
		a, b := costAttrs(got[s.Name].Attributes()), costAttrs(got[s.TwinOf].Attributes())
		if len(a) == 0 || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: cost %v differs from its twin %q: %v", s.Name, a, s.TwinOf, b)
		}
	}
	// Spans that are not one model call are left exactly as they came.
	for _, name := range []string{"invoke_agent planner (repeats its children's tokens)", "execute_tool search", "openinference AGENT", "openllmetry workflow", "GET /health (not GenAI)", "chat cost from the provider", "chat cost from the Python package", "chat claude-sonnet-4 (the SDK's own span, priced on ours)"} {
		var s inputSpan
		for _, x := range in.Spans {
			if x.Name == name {
				s = x
			}
		}
		if s.Name == "" {
			t.Fatalf("no input span %q", name)
		}
		orig := pcommon.NewMap()
		for k, v := range s.Attributes {
			putJSON(t, orig, k, v)
		}
		if !reflect.DeepEqual(got[name].Attributes().AsRaw(), orig.AsRaw()) {
			t.Errorf("%s was changed: %v", name, got[name].Attributes().AsRaw())
		}
	}

	// The processor's own telemetry counts every outcome.
	m, err := tel.GetMetric(metadata.MetricSpans)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		o, _ := dp.Attributes.Value("outcome")
		mal, _ := dp.Attributes.Value("malformed_usage")
		counts[fmt.Sprintf("%s/%v", o.AsString(), mal.AsBool())] += dp.Value
	}
	wantCounts := map[string]int64{
		"priced/false": 19, "priced/true": 1, "unknown_model/false": 1, "no_usage/false": 1,
		"kept/false": 2, "not_inference/false": 4, "priced_elsewhere/false": 1,
	}
	if !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("telemetry counts %v, want %v", counts, wantCounts)
	}
	usd, err := tel.GetMetric(metadata.MetricUSD)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, s := range in.Spans {
		if v, ok := got[s.Name].Attributes().Get("ai_cost.pricing.status"); ok && v.Str() == "priced" {
			if _, kept := s.Attributes["gen_ai.usage.cost.amount"]; !kept {
				a, _ := got[s.Name].Attributes().Get("gen_ai.usage.cost.amount")
				total += a.Double()
			}
		}
	}
	if v := usd.Data.(metricdata.Sum[float64]).DataPoints[0].Value; math.Abs(v-total) > 1e-12 {
		t.Errorf("usd counter %v, want %v", v, total)
	}
}

// normalise makes an attribute map compare equal to its JSON round trip.
func normalise(m map[string]any) map[string]any {
	data, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

func TestOverride(t *testing.T) {
	in := readInput(t, filepath.Join("testdata", "golden", "spans_in.json"))
	var spans []inputSpan
	for _, s := range in.Spans {
		if s.Name == "chat cost from the provider" || s.Name == "chat cost from the Python package" {
			spans = append(spans, s)
		}
	}
	const want = 0.0075 // 1000 x $2.50/M + 500 x $10/M
	for _, tc := range []struct {
		override       Override
		provider, ours float64
	}{
		{OverrideNever, 0.5, 0.1},
		{OverrideLocalOnly, 0.5, want},
		{OverrideAlways, want, want},
	} {
		t.Run(string(tc.override), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Override = tc.override
			p, sink := newTestProcessor(t, cfg, nil)
			if err := p.ConsumeTraces(context.Background(), buildTraces(t, spans)); err != nil {
				t.Fatal(err)
			}
			got := spansByName(sink.AllTraces()[0])
			for name, amount := range map[string]float64{"chat cost from the provider": tc.provider, "chat cost from the Python package": tc.ours} {
				attrs := got[name].Attributes()
				a, _ := attrs.Get("gen_ai.usage.cost.amount")
				if a.Double() != amount {
					t.Errorf("%s: amount %v, want %v", name, a.Double(), amount)
				}
				if amount == want {
					// A recomputation replaces the old breakdown and pricing facts whole.
					v, _ := attrs.Get("ai_cost.pricing.catalog_version")
					in, _ := attrs.Get("ai_cost.cost.input")
					src, _ := attrs.Get("gen_ai.usage.cost.source")
					if v.Str() == "2020.01.01" || in.Double() != 0.0025 || src.Str() != "local" {
						t.Errorf("%s: stale attributes %v", name, attrs.AsRaw())
					}
				}
			}
		})
	}
}

func TestSortedKeysOfGolden(t *testing.T) {
	// The golden output lists every input span (a dropped case would silently stop being tested).
	in := readInput(t, filepath.Join("testdata", "golden", "spans_in.json"))
	data, err := os.ReadFile(filepath.Join("testdata", "golden", "spans_out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal(data, &want)
	var a, b []string
	for _, s := range in.Spans {
		a = append(a, s.Name)
	}
	for k := range want {
		b = append(b, k)
	}
	sort.Strings(a)
	sort.Strings(b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("spans_out.json names %v, input names %v", b, a)
	}
}

func TestDatedPricesUseTheSpanStartTime(t *testing.T) {
	// gpt-4o cost $5/$15 per M before 2024-10-02 (UTC) and $2.50/$10 from then (the catalog's price_history):
	// the processor prices a span at the period in force when it started, not when it is processed.
	p, sink := newTestProcessor(t, createDefaultConfig().(*Config), nil)
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	starts := map[string]time.Time{
		"before": time.Date(2024, 10, 1, 23, 59, 59, 0, time.UTC),
		"on":     time.Date(2024, 10, 2, 0, 0, 0, 0, time.UTC),
		"unset":  {},
	}
	for name, start := range starts {
		span := ss.AppendEmpty()
		span.SetName(name)
		span.SetKind(ptrace.SpanKindClient)
		if !start.IsZero() {
			span.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			span.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))
		}
		a := span.Attributes()
		a.PutStr("gen_ai.operation.name", "chat")
		a.PutStr("gen_ai.provider.name", "openai")
		a.PutStr("gen_ai.request.model", "gpt-4o")
		a.PutInt("gen_ai.usage.input_tokens", 1000)
		a.PutInt("gen_ai.usage.output_tokens", 1000)
	}
	if err := p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	got := spansByName(sink.AllTraces()[0])
	// 1000 x $5/M + 1000 x $15/M = 0.02; 1000 x $2.50/M + 1000 x $10/M = 0.0125; no start time: now.
	for name, want := range map[string]float64{"before": 0.02, "on": 0.0125, "unset": 0.0125} {
		a, _ := got[name].Attributes().Get("gen_ai.usage.cost.amount")
		if a.Double() != want {
			t.Errorf("%s: amount %v, want %v", name, a.Double(), want)
		}
	}
}
