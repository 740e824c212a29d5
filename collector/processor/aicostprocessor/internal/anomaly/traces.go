package anomaly

import (
	"container/list"
	"math"
)

// traceStats: sizes of finished traces of one trace key, decayed log histograms of calls and cost.
type traceStats struct {
	n                 int
	calls, cost       [TraceBuckets]float64
	thrCalls, thrCost float64
}

func bucket(value, unit float64) int {
	if value <= unit {
		return 0
	}
	b := int(math.Log(value/unit)*4) + 1
	if b > TraceBuckets-1 {
		b = TraceBuckets - 1
	}
	return b
}

func bucketTop(i int, unit float64) float64 {
	return unit * math.Exp(float64(i)/4)
}

func quantileTop(hist *[TraceBuckets]float64, q, unit float64) float64 {
	total := sum(hist[:])
	acc := 0.0
	for i, h := range hist {
		acc += h
		if acc >= q*total {
			return bucketTop(i, unit)
		}
	}
	return bucketTop(TraceBuckets-1, unit)
}

// sum adds left to right, as Python 3.11's sum() does.
func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

type openTrace struct {
	id             string
	calls          int
	cost, last     float64
	tkey           string
	flagged, escal bool
	thrCalls       float64
	thrCost        float64
}

// traceWatch: the open traces (oldest first) and the learned sizes of finished ones.
type traceWatch struct {
	opt    *Options
	order  *list.List // of *openTrace, least recently called first
	traces map[string]*list.Element
	stats  map[string]*traceStats
}

func newTraceWatch(opt *Options) *traceWatch {
	return &traceWatch{opt: opt, order: list.New(), traces: map[string]*list.Element{}, stats: map[string]*traceStats{}}
}

// observe counts call r of its trace; a runaway trace finding (a warning, then once a critical one
// when it grows to 3x the threshold) or nil.
func (w *traceWatch) observe(r *Record) *Finding {
	now := r.Time
	el, ok := w.traces[r.TraceID]
	var tr *openTrace
	if !ok {
		tkey := "*"
		for _, d := range traceKeyDims {
			if v, ok := r.dim(d); ok {
				tkey = v
				break
			}
		}
		tr = &openTrace{id: r.TraceID, last: now, tkey: tkey}
		tr.thrCalls, tr.thrCost = w.thresholds(w.stats[tkey]) // learned from the traces finished before this one
		w.traces[r.TraceID] = w.order.PushBack(tr)
		if len(w.traces) > w.opt.MaxTraces {
			w.close(w.order.Front())
		}
	} else {
		tr = el.Value.(*openTrace)
		w.order.MoveToBack(el)
	}
	tr.calls++
	tr.cost += r.Cost
	tr.last = now
	for i := 0; i < maxClosedPerCall; i++ { // close idle traces, oldest first: amortised O(1)
		front := w.order.Front()
		if front.Value.(*openTrace).last > now-w.opt.TraceIdle {
			break
		}
		w.close(front)
	}
	if tr.escal {
		return nil
	}
	thrCalls, thrCost := tr.thrCalls, tr.thrCost
	// a single expensive call is a cost or token spike: a run is runaway by cost from 3 calls on
	if float64(tr.calls) <= thrCalls && (tr.calls < traceCostMinCalls || tr.cost <= thrCost) {
		return nil
	}
	overCalls := float64(tr.calls) / thrCalls
	overCost := 0.0
	if tr.calls >= traceCostMinCalls {
		overCost = tr.cost / thrCost
	}
	strength := math.Max(overCalls, overCost)
	if tr.flagged && strength < traceEscalate {
		return nil
	}
	metric, observed, baseline := "trace_cost", tr.cost, thrCost
	if overCalls >= overCost {
		metric, observed, baseline = "trace_calls", float64(tr.calls), thrCalls
	}
	sev := "warning"
	if strength >= traceEscalate || tr.flagged {
		sev = "critical"
	}
	if tr.flagged {
		tr.escal = true
	}
	tr.flagged = true
	return &Finding{Type: RunawayTrace, Score: score(strength), Severity: sev, Cause: Cause{DimTrace, r.TraceID, 1.0},
		Metric: metric, Observed: observed, Baseline: baseline, Key: "*/trace=" + r.TraceID, Time: now,
		TraceID: r.TraceID, Model: r.Model}
}

func (w *traceWatch) thresholds(s *traceStats) (float64, float64) {
	calls, cost := float64(DefaultTraceCalls), math.Inf(1)
	if s != nil && s.n >= TraceWarm {
		calls, cost = s.thrCalls, s.thrCost
	}
	if w.opt.MaxTraceCalls > 0 {
		calls = math.Min(calls, float64(w.opt.MaxTraceCalls))
	}
	if w.opt.MaxTraceCost > 0 {
		cost = math.Min(cost, w.opt.MaxTraceCost)
	}
	return calls, cost
}

// close ends an open trace; unless it was found runaway it feeds its key's histograms.
func (w *traceWatch) close(el *list.Element) {
	tr := w.order.Remove(el).(*openTrace)
	delete(w.traces, tr.id)
	if tr.flagged {
		return // a runaway trace is not a sample of normal traces
	}
	s := w.stats[tr.tkey]
	if s == nil {
		if len(w.stats) > w.opt.MaxKeys {
			clear(w.stats)
		}
		s = &traceStats{thrCalls: math.Inf(1), thrCost: math.Inf(1)}
		w.stats[tr.tkey] = s
	}
	s.n++
	if s.n > traceDecayAfter && s.n%traceDecayEvery == 0 {
		for i := range s.calls {
			s.calls[i] *= traceDecay64
			s.cost[i] *= traceDecay64
		}
	}
	s.calls[bucket(float64(tr.calls), 1.0)]++
	if tr.cost > 0 {
		s.cost[bucket(tr.cost, CostUnit)]++
	}
	if s.n >= TraceWarm && s.n%traceRefresh == 0 {
		s.thrCalls = math.Max(float64(MinTraceCalls), traceOverQuantile*quantileTop(&s.calls, traceQuantile, 1.0))
		if sum(s.cost[:]) >= TraceWarm {
			s.thrCost = traceOverQuantile * quantileTop(&s.cost, traceQuantile, CostUnit)
		}
	}
}
