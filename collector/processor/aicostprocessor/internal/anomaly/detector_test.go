package anomaly

import (
	"fmt"
	"testing"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/anomaly/scenariotest"
)

// Keys, open traces and fingerprints stay within their bounds on the mixed scenario.
func TestMemoryIsBounded(t *testing.T) {
	h, calls := scenariotest.Read(t, "mixed.jsonl")
	d := New(Options{MaxKeys: 200, MaxTraces: 30, MaxFingerprints: 40})
	maxKeys, maxTraces, maxFps := 0, 0, 0
	for i := range calls {
		r := record(&calls[i], h.Dimensions)
		d.Observe(&r)
		k, tr, fp := d.Counts()
		maxKeys, maxTraces, maxFps = max(maxKeys, k), max(maxTraces, tr), max(maxFps, fp)
	}
	// a call adds at most 1 + 2 x 4 keys after an eviction to 0.9 x MaxKeys
	if maxKeys > 200 || maxTraces > 30 || maxFps > 40 || maxKeys < 150 || maxTraces < 30 || maxFps < 40 {
		t.Fatalf("max keys %d traces %d fingerprints %d", maxKeys, maxTraces, maxFps)
	}
	unbounded := New(Options{})
	for i := range calls {
		r := record(&calls[i], h.Dimensions)
		unbounded.Observe(&r)
	}
	if k, _, _ := unbounded.Counts(); k <= 200 {
		t.Fatalf("the scenario has only %d keys: the bound was not exercised", k)
	}
}

// A trace is finished when no call came for TraceIdle seconds of span time (not wall clock): its
// size then feeds the learned thresholds, and after TraceWarm finished traces the learned calls
// threshold (2 x the 99.9th percentile, at least MinTraceCalls) replaces DefaultTraceCalls.
func TestIdleTracesCloseBySpanTime(t *testing.T) {
	d := New(Options{TraceIdle: 100})
	now := 1.7e9
	call := func(trace string, at, cost float64) []Finding {
		r := Record{Time: at, Model: "gpt-4o", TraceID: trace, Cost: cost, InputTokens: int64(100 + int(at)%1000),
			OutputTokens: 50, Dims: []Dim{{DimService, "agent"}}}
		return d.Observe(&r)
	}
	for i := 0; i < TraceWarm+2*traceRefresh; i++ { // finished traces of 3 calls each, one every 10 s
		for j := 0; j < 3; j++ {
			call(fmt.Sprintf("t%04d", i), now+float64(i)*10+float64(j), 0.001)
		}
	}
	if _, open, _ := d.Counts(); open > 11 {
		t.Fatalf("%d traces open: idle traces (by span time) were not closed", open)
	}
	s := d.traces.stats["agent"]
	if s == nil || s.n < TraceWarm || s.thrCalls != MinTraceCalls {
		t.Fatalf("trace stats %+v", s)
	}
	// now a trace of 16 cheap calls is runaway by calls (threshold 15 learned, not the default 50;
	// its cost stays under the learned 2 x 0.003 USD)
	start := now + float64(TraceWarm+2*traceRefresh)*10
	var got []Finding
	for j := 0; j < 16; j++ {
		for _, f := range call("loop", start+float64(j), 0.0001) {
			if f.Type == RunawayTrace {
				got = append(got, f)
			}
		}
	}
	if len(got) != 1 || got[0].Observed != 16 || got[0].Baseline != MinTraceCalls || got[0].Cause.String() != "trace=loop" {
		t.Fatalf("runaway findings %+v", got)
	}
}

func BenchmarkObserve(b *testing.B) {
	h, calls := scenariotest.Read(b, "mixed.jsonl")
	records := make([]Record, len(calls))
	for i := range calls {
		records[i] = record(&calls[i], h.Dimensions)
	}
	span := records[len(records)-1].Time - records[0].Time + 3600
	d := New(Options{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := records[i%len(records)]
		r.Time += float64(i/len(records)) * span // later laps: later times, same traffic
		d.Observe(&r)
	}
}
