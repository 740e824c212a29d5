package anomaly

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor/internal/anomaly/scenariotest"
)

// Record is the scenario call as the detector sees it.
func record(c *scenariotest.Call, dims []string) Record {
	r := Record{Time: c.T, Model: c.Model, TraceID: c.Trace, Error: c.Err != 0, EstimatedInputTokens: c.Estimate()}
	if c.Cost != nil {
		r.Cost = *c.Cost
	}
	if c.In != nil {
		r.InputTokens = *c.In
	}
	if c.Out != nil {
		r.OutputTokens = *c.Out
	}
	for i, v := range c.D {
		if v != nil && *v != "" {
			r.Dims = append(r.Dims, Dim{dims[i], *v})
		}
	}
	return r
}

func scenarioOptions(t testing.TB, h scenariotest.Header) Options {
	o := Options{Dimensions: h.Dimensions}
	for k, v := range h.Detector {
		switch k {
		case "max_trace_calls":
			o.MaxTraceCalls = int(v)
		case "max_trace_cost":
			o.MaxTraceCost = v
		case "max_keys":
			o.MaxKeys = int(v)
		case "max_traces":
			o.MaxTraces = int(v)
		case "max_fingerprints":
			o.MaxFingerprints = int(v)
		default:
			t.Fatalf("scenario %s: detector argument %s has no Go option", h.Scenario, k)
		}
	}
	return o
}

func close9(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// Every call of every scenario gives the findings the Python detector gave: same types in the same
// order, severities, causes, metrics and keys; scores, shares, observed and baseline values to 1e-9.
func TestScenariosGiveThePythonFindings(t *testing.T) {
	for _, name := range scenariotest.Names(t) {
		t.Run(name, func(t *testing.T) {
			h, calls := scenariotest.Read(t, name)
			d := New(scenarioOptions(t, h))
			found, bad := map[string]int{}, 0
			for n, c := range calls {
				r := record(&c, h.Dimensions)
				got := d.Observe(&r)
				for _, f := range got {
					found[f.Type]++
				}
				if diff := compareFindings(got, c.Findings); diff != "" {
					bad++
					t.Errorf("%s call %d (line %d, t=%v, %s trace %s): %s", name, n, n+2, c.T, c.Model, c.Trace, diff)
					if bad >= 10 {
						t.Fatal("too many differences")
					}
				}
			}
			if len(found) == 0 {
				t.Fatal("no finding at all")
			}
			t.Logf("%s: %d calls, findings %v", name, len(calls), found)
		})
	}
}

// CompareFindings: "" when got are the Python findings want.
func compareFindings(got []Finding, want []scenariotest.Finding) string {
	if len(got) != len(want) {
		return describe(got) + " want " + describeWant(want)
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.Type || g.Severity != w.Severity || g.Cause.String() != w.Cause || g.Metric != w.Metric ||
			g.Key != w.Key || !close9(g.Score, w.Score) || !close9(g.Cause.Share, w.Share) ||
			!close9(g.Observed, w.Observed) || !close9(g.Baseline, w.Baseline) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			return "got " + string(gj) + " want " + string(wj)
		}
	}
	return ""
}

func describe(fs []Finding) string {
	b, _ := json.Marshal(fs)
	return string(b)
}

func describeWant(fs []scenariotest.Finding) string {
	b, _ := json.Marshal(fs)
	return string(b)
}

// The Go constants equal the Python detector's parameters the scenarios were written with.
func TestParametersMatchPython(t *testing.T) {
	goValues := map[string]float64{
		"ALPHA_ERR_FAST": AlphaErrFast, "ALPHA_FAST": AlphaFast, "ALPHA_SLOW": AlphaSlow, "COST_UNIT": CostUnit,
		"FAST_NOISE": fastNoise, "LN2": math.Ln2, "TAU_FAST": TauFast, "TAU_SLOW": TauSlow,
		"TRACE_BUCKETS": TraceBuckets, "WARM_CALLS": WarmCalls, "WEEK_HOURS": WeekHours, "cooldown": Cooldown,
		"default_trace_calls": DefaultTraceCalls, "error_rate": ErrorRate, "max_fingerprints": MaxFingerprints,
		"max_keys": MaxKeys, "max_traces": MaxTraces, "min_spike_ratio": MinSpikeRatio,
		"min_trace_calls": MinTraceCalls, "new_model_min_age": NewModelMinAge,
		"new_model_min_calls": NewModelMinCalls, "retry_repeats": RetryRepeats, "retry_window": RetryWindow,
		"spike_deviations": SpikeDeviations, "trace_idle": TraceIdle, "trace_warm": TraceWarm,
		"volume_deviations": VolumeDeviations, "volume_ratio": VolumeRatio,
		"spike_memory": SpikeMemory, "cause_calls": CauseCalls, "TAU_MID": TauMid, "TAU_RELAX": TauRelax,
		"MIN_SCALE": MinScale, "STATE_VERSION": StateVersion,
	}
	for _, name := range scenariotest.Names(t) {
		h, _ := scenariotest.Read(t, name)
		for k, v := range h.Parameters {
			g, ok := goValues[k]
			if !ok {
				t.Errorf("%s: Python parameter %s = %v has no Go constant in params.go", name, k, v)
			} else if !close9(g, v) {
				t.Errorf("%s: Python parameter %s = %v, the Go constant is %v (params.go)", name, k, v, g)
			}
		}
		if len(h.Parameters) < 20 {
			t.Errorf("%s: only %d parameters in the header", name, len(h.Parameters))
		}
	}
}
