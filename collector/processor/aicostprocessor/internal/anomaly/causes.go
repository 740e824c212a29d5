package anomaly

import (
	"math"
	"sort"
)

// The causes of findings (the Python _causes.py): the last calls are kept in a ring, and the cause
// is computed only when a finding is made, by a replay of the ring: for each candidate (the
// call's model, each of its values over every model and within the model, and for a finding on
// an every-model key that key's value within each model) a CUSUM of the deviations of the
// candidate's calls from their reference baselines, less a drift, decayed over TauCause. The
// candidate with the largest CUSUM is the cause; candidates within 1 % of it tie, and the
// finding type's order of dimensions decides.

type ringCall struct {
	t       float64
	model   string
	dims    []Dim
	logs    [3]float64
	has     [3]bool
	hasLogs bool // false for a call with an error
	err     bool
	ref     *keyBaseline
}

type callRing struct {
	calls []ringCall
	next  int // where the next call goes once the ring is full
}

func (r *callRing) add(c ringCall, max int) {
	if len(r.calls) < max {
		r.calls = append(r.calls, c)
		return
	}
	r.calls[r.next] = c
	r.next = (r.next + 1) % max
}

// each visits the calls oldest first.
func (r *callRing) each(f func(c *ringCall)) {
	n := len(r.calls)
	for j := 0; j < n; j++ {
		f(&r.calls[(r.next+j)%n])
	}
}

type causeCand struct {
	scope      string // the model, or "" for every model
	dim, value string // the calls: dimension (or DimModel) and value
	name, val  string // the dimension and value it names
}

func dimOf(dims []Dim, name string) (string, bool) {
	for _, d := range dims {
		if d.Name == name {
			return d.Value, true
		}
	}
	return "", false
}

// cause of an excess of metric (0..2: cost, input, output tokens; 3: errors) seen on a call of
// model with dims at now (on the every-model key (edim, evalue) when every is set).
func (r *callRing) cause(metric int, now float64, model string, dims []Dim, ranks map[string]int,
	every bool, edim, evalue string) Cause {
	since := now - causeHorizon
	cands := []causeCand{{"", DimModel, model, DimModel, model}}
	for _, d := range dims {
		cands = append(cands, causeCand{"", d.Name, d.Value, d.Name, d.Value},
			causeCand{model, d.Name, d.Value, d.Name, d.Value})
	}
	byModel := map[string]int{}
	if every { // which model holds the every-model key's excess
		seen := map[string]bool{}
		var models []string
		r.each(func(c *ringCall) {
			if c.t >= since {
				if v, ok := dimOf(c.dims, edim); ok && v == evalue && !seen[c.model] {
					seen[c.model] = true
					models = append(models, c.model)
				}
			}
		})
		sort.Strings(models)
		for _, m := range models {
			byModel[m] = len(cands)
			cands = append(cands, causeCand{m, edim, evalue, DimModel, m})
		}
	}
	cusum := make([]float64, len(cands))
	excess := make([]float64, len(cands))
	drift := CusumDrift
	if metric == 3 {
		drift = CusumErr
	}
	rates := map[*keyBaseline]float64{}
	mine := make([]int, 0, len(cands))
	r.each(func(c *ringCall) {
		if c.t < since {
			return
		}
		mine = mine[:0]
		own := c.model == model
		if own {
			mine = append(mine, 0)
		}
		for j, d := range dims {
			if v, ok := dimOf(c.dims, d.Name); ok && v == d.Value {
				mine = append(mine, 1+2*j)
				if own {
					mine = append(mine, 2+2*j)
				}
			}
		}
		if every {
			if v, ok := dimOf(c.dims, edim); ok && v == evalue {
				if n, ok := byModel[c.model]; ok {
					mine = append(mine, n)
				}
			}
		}
		if len(mine) == 0 {
			return
		}
		ref := c.ref
		var dev, z float64
		if metric == 3 {
			if ref.n < WarmCalls {
				return
			}
			es, ok := rates[ref]
			if !ok {
				_, es = ref.errorRates(ref.n, now)
				rates[ref] = es
			}
			e := 0.0
			if c.err {
				e = 1.0
			}
			dev = e - es
			z = dev - drift
		} else {
			if !c.hasLogs || ref.nm[metric] <= WarmCalls || !c.has[metric] {
				return
			}
			dev = c.logs[metric] - ref.mu[metric]
			z = dev/math.Max(ref.dv[metric], MinScale) - drift
		}
		w := math.Exp((c.t - now) / TauCause) // the CUSUMs are kept scaled to now
		zw, dw := z*w, dev*w
		for _, n := range mine {
			u := cusum[n] + zw
			if u > 0 {
				cusum[n] = u
			} else {
				cusum[n] = 0.0
			}
			excess[n] += dw
		}
	})
	refExcess := excess[0]
	top := cusum[0]
	for _, c := range cusum {
		if c > top {
			top = c
		}
	}
	if top <= 0 { // no evidence (a cold reference): the model, or the every-model key's value
		if every {
			return Cause{edim, evalue, 1.0}
		}
		return Cause{DimModel, model, 1.0}
	}
	rank := func(n int) int {
		if x, ok := ranks[cands[n].name]; ok {
			return x
		}
		return len(ranks)
	}
	pick := -1
	for n, c := range cusum { // candidates over the same calls tie: the order of the type decides
		if c >= causeTie*top && (pick < 0 || rank(n) < rank(pick)) {
			pick = n
		}
	}
	name, val := cands[pick].name, cands[pick].val
	share := 1.0
	if name != DimModel && refExcess > 0 {
		share = math.Min(1.0, math.Max(0.0, excess[pick]/refExcess))
	}
	return Cause{name, val, share}
}

// causeRanks: ranks of dimensions: first (those of them in use, or the model) first, then
// dimensions, then the model (the Python order()).
func causeRanks(dimensions []string, first ...string) map[string]int {
	var ranked []string
	in := func(xs []string, x string) bool {
		for _, y := range xs {
			if y == x {
				return true
			}
		}
		return false
	}
	for _, d := range first {
		if in(dimensions, d) || d == DimModel {
			ranked = append(ranked, d)
		}
	}
	for _, d := range dimensions {
		if !in(ranked, d) {
			ranked = append(ranked, d)
		}
	}
	if !in(ranked, DimModel) {
		ranked = append(ranked, DimModel)
	}
	out := map[string]int{}
	for i, d := range ranked {
		out[d] = i
	}
	return out
}
