// Package anomaly is the Go port of the Python anomaly detector (src/otel_ai_cost/anomalies/, its
// README has the rules table): per (model, attribution key) baselines of cost, tokens, calls and
// errors per call, per trace calls and cost, repeated requests and new models. Detector.Observe
// takes one finished GenAI call and returns the findings it triggers, as the Python
// AnomalyDetector.observe does; time is the caller's (span end times), never the wall clock.
package anomaly

import (
	"math"
	"strconv"
)

// Finding types (semconv/anomaly.yaml ai_cost.anomaly.type).
const (
	CostSpike    = "cost_spike"
	TokenSpike   = "token_spike"
	VolumeSpike  = "volume_spike"
	RunawayTrace = "runaway_trace"
	RetryStorm   = "retry_storm"
	NewModel     = "new_model"
	ErrorSpike   = "error_spike"
)

// Types lists every finding type; typeIndex is a type's position in it.
var Types = [...]string{CostSpike, TokenSpike, VolumeSpike, RunawayTrace, RetryStorm, NewModel, ErrorSpike}

const numTypes = len(Types)

func typeIndex(t string) int {
	for i, x := range Types {
		if x == t {
			return i
		}
	}
	return -1
}

// Dim is one attribution dimension's value on a call.
type Dim struct {
	Name, Value string
}

// Record is one finished GenAI call (the Python CallRecord). Zero means absent for the numbers.
type Record struct {
	Time         float64 // s since the epoch: the span's end
	Model        string
	Dims         []Dim // in the detector's Dimensions order, absent or empty values left out
	TraceID      string
	Cost         float64 // USD
	InputTokens  int64
	OutputTokens int64
	Error        bool
	// EstimatedInputTokens: ai_cost.estimate.input_tokens, for the weak request fingerprint when
	// usage is missing.
	EstimatedInputTokens int64
}

func (r *Record) dim(name string) (string, bool) {
	for _, d := range r.Dims {
		if d.Name == name {
			return d.Value, true
		}
	}
	return "", false
}

// Cause is the dimension and value contributing most, and its share (0..1) of the excess.
type Cause struct {
	Dimension, Value string
	Share            float64
}

func (c Cause) String() string { return c.Dimension + "=" + c.Value }

// Finding is what the detector says about one call.
type Finding struct {
	Type     string
	Score    float64 // 0..1: 1 - exp(-strength), 0.63 at the threshold
	Severity string  // info | warning | critical
	Cause    Cause
	Metric   string // cost_per_call, input_tokens_per_call, ..., trace_calls, trace_cost, repeats
	Observed float64
	Baseline float64
	Key      string // "<model>/<dimension>=<value>", "*" for every model
	Time     float64
	TraceID  string
	Model    string
}

var severityRank = map[string]int{"info": 0, "warning": 1, "critical": 2}

// MostSevere returns the finding with the highest severity, then score (the first of equals), or nil.
func MostSevere(fs []Finding) *Finding {
	var best *Finding
	for i := range fs {
		f := &fs[i]
		if best == nil || severityRank[f.Severity] > severityRank[best.Severity] ||
			(severityRank[f.Severity] == severityRank[best.Severity] && f.Score > best.Score) {
			best = f
		}
	}
	return best
}

// Round4 rounds a score or share as the span attributes carry it.
func Round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return v
}

func score(strength float64) float64 {
	return 1.0 - math.Exp(-math.Max(strength, 0.0))
}

func severity(ratio float64) string {
	if ratio >= severityCritical {
		return "critical"
	}
	if ratio >= severityWarning {
		return "warning"
	}
	return "info"
}

// floorDiv is Python's float floor division a // b for b > 0.
func floorDiv(a, b float64) float64 {
	mod := math.Mod(a, b)
	div := (a - mod) / b
	if mod != 0 && mod < 0 {
		div -= 1.0
	}
	var fl float64
	if div != 0 {
		fl = math.Floor(div)
		if div-fl > 0.5 {
			fl += 1.0
		}
	}
	return fl
}
