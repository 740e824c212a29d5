package anomaly

import "container/list"

// The weak request fingerprint: spans carry no request body, so a repeat is the same model with
// the same input (or estimated input) tokens within one trace (the Python rule without a
// request_fingerprint).
type repeatKey struct {
	model  string
	tokens int64
	trace  string
}

type repeatEntry struct {
	key   repeatKey
	count int
	first float64
}

// repeatWatch: retry storms, the same request RetryRepeats times within RetryWindow seconds in one
// trace. At most MaxFingerprints entries, the oldest forgotten first.
type repeatWatch struct {
	opt     *Options
	order   *list.List // of *repeatEntry, by the start of their window
	entries map[repeatKey]*list.Element
}

func newRepeatWatch(opt *Options) *repeatWatch {
	return &repeatWatch{opt: opt, order: list.New(), entries: map[repeatKey]*list.Element{}}
}

func (w *repeatWatch) observe(r *Record) *Finding {
	tokens := r.InputTokens
	if tokens <= 0 {
		tokens = r.EstimatedInputTokens
	}
	if tokens <= 0 || r.TraceID == "" {
		return nil
	}
	key := repeatKey{r.Model, tokens, r.TraceID}
	el, ok := w.entries[key]
	var e *repeatEntry
	if ok {
		e = el.Value.(*repeatEntry)
	}
	if !ok || r.Time-e.first > RetryWindow {
		if ok {
			e.count, e.first = 0, r.Time
			w.order.MoveToBack(el)
		} else {
			e = &repeatEntry{key: key, first: r.Time}
			w.entries[key] = w.order.PushBack(e)
			if len(w.entries) > w.opt.MaxFingerprints {
				oldest := w.order.Front()
				w.order.Remove(oldest)
				delete(w.entries, oldest.Value.(*repeatEntry).key)
			}
		}
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
