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
			if len(w.usage) > w.opt.MaxKeys {
				clear(w.usage) // rare: forget which models keys use rather than grow
			}
			e = &usage{first: r.Time, models: map[string]struct{}{}}
			w.usage[usageKey{dim, value}] = e
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
