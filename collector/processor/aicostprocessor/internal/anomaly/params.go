package anomaly

// The detector's thresholds and windows: the same values as the Python detector
// (src/otel_ai_cost/anomalies/: AnomalyDetector's keyword defaults in _detector.py, the constants of
// _baseline.py and _traces.py, and the literals of its rules, named here). Keep them in sync: the
// scenario files (tests/vectors/anomalies/*.jsonl, written by scripts/anomaly_vectors.py) carry the
// Python values in their header, and TestParametersMatchPython names any constant that differs.

// Windows and EWMA weights (_baseline.py).
const (
	TauFast      = 60.0   // s: the fast window of call counts and decayed sums (TAU_FAST)
	TauSlow      = 1800.0 // s: the slow window of call counts (TAU_SLOW)
	TauMid       = 300.0  // s: the second window of runs per minute: sustained spikes at low rates (TAU_MID)
	TauRelax     = 600.0  // s: a key's fast means fall back to its baseline when it has no calls (TAU_RELAX)
	AlphaFast    = 0.3    // fast EWMA of log cost / tokens per call (ALPHA_FAST)
	AlphaSlow    = 0.02   // slow baseline EWMA once warm (ALPHA_SLOW)
	AlphaErrFast = 0.2    // fast error rate (ALPHA_ERR_FAST)
	MinScale     = 0.05   // of a log metric: a key whose calls are all alike still has some spread (MIN_SCALE)
	StateVersion = 2      // of a saved key state (STATE_VERSION; the collector saves none)
	// fastRelaxAfter: a gap (s) over which a key's fast means relax towards its baseline
	fastRelaxAfter = 60.0
	// errorRelaxAfter: a gap (s) since the last error over which the fast error rate relaxes
	errorRelaxAfter = 10.0
	WarmCalls       = 50  // calls before a key's per-call baselines can fire (WARM_CALLS)
	WeekHours       = 168 // hour-of-week slots (WEEK_HOURS)
	// seasonAfter: a key keeps calls per hour of the week once it is this old (s) ...
	seasonAfter = 86400.0
	// ... and uses them once it is this old (s).
	seasonUse = 7 * 86400.0
)

// Cost and token spikes (AnomalyDetector defaults and _update / _baseline literals).
const (
	SpikeDeviations = 6.0  // fast mean above the baseline by this many deviations of the fast mean (spike_deviations)
	MinSpikeRatio   = 2.0  // ... and by at least this ratio (min_spike_ratio)
	devScale        = 1.25 // mean absolute deviation -> standard deviation
	winsorDevs      = 3.0  // baseline updates are clipped at this many deviations
	spikeEnter      = 0.5  // a fast mean over this share of the threshold: the key is in a spike ...
	spikeSlowDown   = 10.0 // ... and its baseline learns AlphaSlow / this (ALPHA_SPIKE), its scale not at all
	tokensUpLog     = 0.4  // fast log tokens this far above the baseline explain a cost spike (tokens_up)
)

// Calls per minute (volume_spike).
const (
	VolumeRatio      = 3.0  // fast count over this ratio of the expected count (volume_ratio)
	VolumeDeviations = 4.0  // ... and over expected + this many deviations + volumeSlack (volume_deviations)
	volumeSlack      = 3.0  // calls
	volumeMinCalls   = 50   // runs a key needs (besides TauSlow of age) before volume is checked
	volumeWarmSlows  = 20.0 // the slow rate is corrected for a short history until this many TauSlow of age
	burstAlpha       = 0.01 // learning rate of the burstiness (rdev)
	volumeCauseShare = 0.8  // volume cause: the narrowest key holding this share of the largest excess
)

// Errors (error_spike).
const (
	ErrorRate      = 0.4  // fast error rate at least this (error_rate) ...
	errorOverSlow  = 4.0  // ... and this many times the slow rate ...
	errorSlack     = 0.05 // ... plus this
	errorCritical  = 0.8  // fast error rate from which an error spike is critical
	errorSlowAlpha = 0.01 // slow error rate EWMA after errorSlowWarm calls (1/n before)
	errorSlowWarm  = 100
	errorMinBase   = 1e-3 // the slow rate's floor in the ratio
)

// Retry storms (_repeats.py).
const (
	RetryRepeats    = 4    // the same request this many times (warning), 3x that (critical) (retry_repeats)
	RetryWindow     = 60.0 // s, counted from the first of the repeats (retry_window)
	MaxFingerprints = 20000
)

// Runaway traces (_traces.py).
const (
	TraceIdle         = 300.0 // s without a call: the trace is finished (trace_idle)
	MinTraceCalls     = 15    // the learned calls threshold is at least this (min_trace_calls)
	DefaultTraceCalls = 50    // calls threshold until TraceWarm finished traces are known (default_trace_calls)
	TraceWarm         = 200   // finished traces of a trace key before its thresholds are learned (trace_warm)
	TraceBuckets      = 64    // log histogram buckets, 4 per e-fold (TRACE_BUCKETS)
	CostUnit          = 1e-6  // USD, the first bucket of trace cost (COST_UNIT)
	traceQuantile     = 0.999 // thresholds are traceOverQuantile x this quantile of finished traces
	traceOverQuantile = 2.0
	traceCostMinCalls = 3                  // a trace is runaway by cost from this many calls
	traceEscalate     = 3.0                // strength at which a flagged trace is reported once more, critical
	traceDecayAfter   = 1000               // finished traces of a key after which the histograms decay
	traceDecayEvery   = 64                 // ... by traceDecay64 every this many traces
	traceDecay64      = 0.9379749638258454 // 0.999 ** 64, as Python computes it
	traceRefresh      = 16                 // thresholds are recomputed every this many finished traces
	maxClosedPerCall  = 2                  // idle traces closed per call
)

// New models (_new_models.py).
const (
	NewModelMinCalls = 100    // a key is established after this many calls ... (new_model_min_calls)
	NewModelMinAge   = 3600.0 // ... over this many seconds (new_model_min_age)
	maxModelsPerKey  = 64
	newModelAlpha    = 0.02 // EWMA of a key's log cost per call
)

// One finding per incident, memory, severities, causes.
const (
	Cooldown         = 600.0  // s: a finding cools its call's keys down for its type (cooldown)
	MaxKeys          = 10000  // keys (model, dimension, value) with baselines (max_keys)
	MaxTraces        = 10000  // open traces (max_traces)
	evictKeep        = 0.9    // eviction keeps this share of MaxKeys ...
	evictCallsHours  = 3600.0 // ... ranked by last call + this many seconds per e-fold of calls
	severityWarning  = 3.0    // ratio to the baseline from which a spike is a warning
	severityCritical = 10.0   // ... and critical
	CauseCalls       = 1024   // the last calls kept for the causes of findings (cause_calls)
	SpikeMemory      = 600.0  // s: the downgrade hint's memory (spike_memory; no policy hooks in the collector)
)

// Causes: a CUSUM replay of the last calls (_causes.py).
const (
	CusumDrift   = 2.0          // per call, in scales of the reference baseline (CUSUM_DRIFT)
	CusumErr     = 0.15         // per call, errors (CUSUM_ERR)
	TauCause     = 300.0        // s: the CUSUMs decay over this (TAU_CAUSE)
	causeHorizon = 2 * TauCause // s: the calls replayed
	causeTie     = 0.99         // candidates within this share of the largest CUSUM tie
)

// volumeFast: runs under 2 x expected + volumeSlack are then under both thresholds, whatever the
// expected: they are not checked further (the Python _volume_fast).
var volumeFast = VolumeRatio > 2 && volumeSlack/(VolumeRatio-2) <= VolumeDeviations*VolumeDeviations

// Dimension names, and the keys kept for them (AnomalyDetector's keyword defaults).
const (
	DimPrompt  = "gen_ai.prompt.name"
	DimTenant  = "tenant.id"
	DimUser    = "enduser.id"
	DimService = "service.name"
	DimModel   = "gen_ai.request.model"
	DimTrace   = "trace"
	DimAgent   = "gen_ai.agent.name"
)

// DefaultDimensions: the attribution dimensions, in root-cause tie-break order (DEFAULT_DIMENSIONS).
var DefaultDimensions = []string{DimPrompt, DimTenant, DimUser, DimService}

var (
	crossModelDims = []string{DimService, DimTenant}            // also kept over every model (cross_model_dims)
	volumeDims     = []string{DimTenant, DimService}            // runs per minute checked on these (volume_dims)
	newModelDims   = []string{DimService, DimTenant, DimPrompt} // new_model_dims
	traceKeyDims   = []string{DimAgent, DimService}             // trace_key_dims
)
