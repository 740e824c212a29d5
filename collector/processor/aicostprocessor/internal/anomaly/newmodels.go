package anomaly

import "math"

type usageKey struct{ dim, value string }

// usage: the calls of one (dimension, value): how many, since when, with which models, log-cost mean.
type usage struct {
	calls      int
	first      float64
	models     map[string]struct{}
	logCost    float64
	hasLogCost bool
}

// newModelWatch: a model a key (service, tenant, prompt) has never used, once the key is
// established (NewModelMinCalls calls over NewModelMinAge seconds).
type newModelWatch struct {
	opt   *Options
	dims  []string
	usage map[usageKey]*usage
	// generation changes when entries are dropped (the detector's cached shapes hold entries)
	generation int
}

func newNewModelWatch(opt *Options) *newModelWatch {
	// As the Python NewModelWatch builds it: (service, tenant, prompt, *new_model_dims) filtered by
	// new_model_dims, so with the default dimensions each is visited twice per call (its calls count
	// twice and its log-cost mean takes two steps). Kept as is so the findings agree.
	var dims []string
	for _, d := range append([]string{DimService, DimTenant, DimPrompt}, newModelDims...) {
		for _, x := range newModelDims {
			if d == x {
				dims = append(dims, d)
				break
			}
		}
	}
	return &newModelWatch{opt: opt, dims: dims, usage: map[usageKey]*usage{}}
}

func (w *newModelWatch) observe(r *Record, logCost float64, hasLogCost bool) *Finding {
	var found *Finding
	for _, dim := range w.dims {
		value, ok := r.dim(dim)
		if !ok {
			continue
		}
		e := w.usage[usageKey{dim, value}]
		if e == nil {
			e = w.newEntry(usageKey{dim, value}, r.Time)
		}
		e.calls++
		if _, seen := e.models[r.Model]; !seen {
			established := e.calls > NewModelMinCalls && r.Time-e.first >= NewModelMinAge
			if len(e.models) < maxModelsPerKey {
				e.models[r.Model] = struct{}{}
			}
			if established && found == nil {
				ratio, baseline := 1.0, 0.0
				if hasLogCost && e.hasLogCost {
					ratio = math.Exp(logCost - e.logCost)
				}
				if e.hasLogCost {
					baseline = math.Exp(e.logCost)
				}
				found = &Finding{Type: NewModel, Score: score(math.Max(ratio, 1.0)), Severity: severity(ratio),
					Cause: Cause{dim, value, 1.0}, Metric: "cost_per_call", Observed: r.Cost, Baseline: baseline,
					Key: "*/" + dim + "=" + value, Time: r.Time, TraceID: r.TraceID, Model: r.Model}
			}
		}
		if hasLogCost {
			if e.hasLogCost {
				e.logCost = e.logCost + newModelAlpha*(logCost-e.logCost)
			} else {
				e.logCost, e.hasLogCost = logCost, true
			}
		}
	}
	return found
}

func (w *newModelWatch) newEntry(key usageKey, now float64) *usage {
	if len(w.usage) > w.opt.MaxKeys {
		clear(w.usage) // rare: forget which models keys use rather than grow
		w.generation++
	}
	e := &usage{first: now, models: map[string]struct{}{}}
	w.usage[key] = e
	return e
}

// entries: the usage entries of a call's dimensions (created as needed), for count.
func (w *newModelWatch) entries(r *Record) []*usage {
	var out []*usage
	for _, dim := range w.dims {
		value, ok := r.dim(dim)
		if !ok {
			continue
		}
		e := w.usage[usageKey{dim, value}]
		if e == nil {
			e = w.newEntry(usageKey{dim, value}, r.Time)
		}
		out = append(out, e)
	}
	return out
}

// count: a call of a (model, dims) seen before: its model is known to every entry; count the call.
func count(entries []*usage, logCost float64, hasLogCost bool) {
	for _, e := range entries {
		e.calls++
		if hasLogCost {
			if e.hasLogCost {
				e.logCost = e.logCost + newModelAlpha*(logCost-e.logCost)
			} else {
				e.logCost, e.hasLogCost = logCost, true
			}
		}
	}
}
