package anomaly

import "math"

// The weak request fingerprint: spans carry no request body, so a repeat is the same model with
// the same input (or estimated input) tokens within one trace (the Python rule without a
// request_fingerprint).
type repeatKey struct {
	model  string
	tokens int64
	trace  string
}

type repeatEntry struct {
	count int
	first float64
}

// repeatWatch: retry storms, the same request RetryRepeats times within RetryWindow seconds in one
// trace. At most MaxFingerprints entries: two generations of maps, the older dropped when the newer
// is a window old or half full (an entry older than the window is of no use: its count restarts).
type repeatWatch struct {
	opt               *Options
	current, previous map[repeatKey]*repeatEntry
	since             float64 // the start of the current generation
	half              int
}

func newRepeatWatch(opt *Options) *repeatWatch {
	return &repeatWatch{opt: opt, current: map[repeatKey]*repeatEntry{}, previous: map[repeatKey]*repeatEntry{},
		since: math.Inf(-1), half: max(1, opt.MaxFingerprints/2)}
}

func (w *repeatWatch) len() int { return len(w.current) + len(w.previous) }

func (w *repeatWatch) observe(r *Record) *Finding {
	tokens := r.InputTokens
	if tokens <= 0 {
		tokens = r.EstimatedInputTokens
	}
	if tokens <= 0 || r.TraceID == "" {
		return nil
	}
	key := repeatKey{r.Model, tokens, r.TraceID}
	now := r.Time
	e := w.current[key]
	if e == nil {
		e = w.previous[key]
	}
	if e == nil || now-e.first > RetryWindow {
		if now-w.since > RetryWindow || len(w.current) >= w.half {
			w.previous, w.current, w.since = w.current, map[repeatKey]*repeatEntry{}, now
		}
		e = &repeatEntry{first: now}
		w.current[key] = e
	}
	e.count++
	if e.count != RetryRepeats && e.count != 3*RetryRepeats {
		return nil
	}
	sev := "warning"
	if e.count >= 3*RetryRepeats {
		sev = "critical"
	}
	return &Finding{Type: RetryStorm, Score: score(float64(e.count) / RetryRepeats), Severity: sev,
		Cause: Cause{DimTrace, r.TraceID, 1.0}, Metric: "repeats", Observed: float64(e.count), Baseline: 1.0,
		Key: r.Model + "/" + DimTrace + "=" + r.TraceID, Time: r.Time, TraceID: r.TraceID, Model: r.Model}
}
