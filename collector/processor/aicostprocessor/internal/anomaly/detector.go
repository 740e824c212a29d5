package anomaly

import (
	"encoding/binary"
	"math"
	"sort"
	"sync"
)

// Options are the detector's configurable parts (the rest are the constants of params.go).
type Options struct {
	Dimensions      []string // attribution dimensions, in root-cause tie-break order; default DefaultDimensions
	MaxKeys         int      // keys with baselines; default MaxKeys
	MaxTraces       int      // open traces; default MaxTraces
	MaxFingerprints int      // (request, trace) pairs watched for repeats; default MaxFingerprints
	TraceIdle       float64  // s without a call after which a trace is finished; default TraceIdle
	MaxTraceCalls   int      // caps the learned calls-per-trace threshold; 0: no cap
	MaxTraceCost    float64  // caps the learned cost-per-trace threshold (USD); 0: no cap
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.Dimensions == nil {
		out.Dimensions = DefaultDimensions
	}
	if out.MaxKeys <= 0 {
		out.MaxKeys = MaxKeys
	}
	if out.MaxTraces <= 0 {
		out.MaxTraces = MaxTraces
	}
	if out.MaxFingerprints <= 0 {
		out.MaxFingerprints = MaxFingerprints
	}
	if out.TraceIdle <= 0 {
		out.TraceIdle = TraceIdle
	}
	return out
}

type keyID struct{ model, dim, value string }

// What a key keeps: cost and token baselines (the finest key of what a call does, and the keys of
// who makes it), calls and errors only (the model's and service's coarser keys), or also runs per
// minute (the every-model keys of the volume dimensions).
const (
	kindMetrics = iota
	kindCounts
	kindVolume
)

type keyRef struct {
	id   keyID
	k    *keyBaseline
	kind int
}

// shape: the keys of one (model, dims), its new-model usage entries, and the key its calls'
// deviations are measured against for the causes (cached until keys are evicted).
type shape struct {
	keys   []keyRef
	usages []*usage
	ref    *keyBaseline
	dims   []Dim // a copy of the record's (the ring's calls hold it)
}

// A key's excess before it is resolved into a finding; i is the metric index (-1 runs per minute,
// -2 error rate).
type candidate struct {
	typ                string
	i                  int
	strength, ratio    float64
	kid                keyID
	k                  *keyBaseline
	observed, baseline float64
}

type causeKey struct{ typ, dim, value string }

// Detector is the online detector. Safe for concurrent use (one lock).
type Detector struct {
	mu         sync.Mutex
	opt        Options
	ranks      map[string]map[string]int // per finding type: the tie-break order of causes
	crossDims  map[string]bool
	volDims    map[string]bool
	spikeK     float64
	minLog     float64
	keys       map[keyID]*keyBaseline
	seq        int
	shapes     map[string]*shape
	sid        []byte // the current call's shape id (a buffer kept between calls)
	generation int
	ring       callRing
	byCause    map[causeKey]*Finding // the last finding reported per (type, cause)
	newModels  *newModelWatch
	traces     *traceWatch
	repeats    *repeatWatch
}

// New returns a detector; zero Options fields take their defaults.
func New(o Options) *Detector {
	d := &Detector{opt: o.withDefaults(), crossDims: map[string]bool{}, volDims: map[string]bool{},
		spikeK: SpikeDeviations * fastNoise, minLog: math.Log(MinSpikeRatio), keys: map[keyID]*keyBaseline{},
		shapes: map[string]*shape{}, byCause: map[causeKey]*Finding{}}
	dims := d.opt.Dimensions
	d.ranks = map[string]map[string]int{
		TokenSpike: causeRanks(dims),
		CostSpike:  causeRanks(dims, DimTenant, DimUser, DimService),
		ErrorSpike: causeRanks(dims, DimModel, DimService, DimTenant, DimUser),
	}
	for _, dim := range crossModelDims {
		d.crossDims[dim] = true
	}
	for _, dim := range volumeDims {
		d.volDims[dim] = true
	}
	d.newModels = newNewModelWatch(&d.opt)
	d.traces = newTraceWatch(&d.opt)
	d.repeats = newRepeatWatch(&d.opt)
	return d
}

// Dimensions returns the attribution dimensions records are expected to carry, in order.
func (d *Detector) Dimensions() []string { return d.opt.Dimensions }

// Counts returns the keys with baselines, the open traces and the watched fingerprints.
func (d *Detector) Counts() (keys, traces, fingerprints int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys), len(d.traces.traces), d.repeats.len()
}

// Observe feeds one finished call and returns the findings it triggers: a new model, spikes, then
// a runaway trace and a retry storm.
func (d *Detector) Observe(r *Record) []Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observe(r)
}

// shapeID writes the (model, dims) of a record into buf, each string length-prefixed (no two
// shapes share an id, whatever their values hold).
func shapeID(buf []byte, r *Record) []byte {
	buf = binary.AppendUvarint(buf[:0], uint64(len(r.Model)))
	buf = append(buf, r.Model...)
	for _, dim := range r.Dims {
		buf = binary.AppendUvarint(buf, uint64(len(dim.Name)))
		buf = append(buf, dim.Name...)
		buf = binary.AppendUvarint(buf, uint64(len(dim.Value)))
		buf = append(buf, dim.Value...)
	}
	return buf
}

func (d *Detector) observe(r *Record) []Finding {
	now := r.Time
	var findings []Finding
	var logs [3]float64
	var has [3]bool
	hasLogs := !r.Error
	if hasLogs {
		for i, x := range [3]float64{r.Cost, float64(r.InputTokens), float64(r.OutputTokens)} {
			if x > 0 {
				logs[i], has[i] = math.Log(x), true
			}
		}
	}
	if d.generation != d.newModels.generation {
		clear(d.shapes)
		d.generation = d.newModels.generation
	}
	d.sid = shapeID(d.sid, r)
	sh := d.shapes[string(d.sid)] // (no allocation for the lookup)
	if sh == nil {
		sh = d.shape(r, string(d.sid))
		if len(d.newModels.dims) > 0 {
			if f := d.newModels.observe(r, logs[0], has[0]); f != nil {
				findings = append(findings, *f)
			}
		}
	} else {
		count(sh.usages, logs[0], has[0])
	}
	var traceFinding *Finding
	newRun := true // calls per minute count runs (traces): the calls inside one are the trace's business
	if r.TraceID != "" {
		_, open := d.traces.traces[r.TraceID]
		newRun = !open
		traceFinding = d.traces.observe(r)
	}
	var candidates []candidate
	d.ring.add(ringCall{now, r.Model, sh.dims, logs, has, hasLogs, r.Error, sh.ref}, CauseCalls)
	for _, kr := range sh.keys {
		if kr.kind == kindCounts {
			kr.k.n++
			kr.k.t = now
		}
	}
	for _, kr := range sh.keys {
		if kr.kind == kindVolume {
			if newRun {
				d.volume(kr.id, kr.k, now, &candidates)
			} else {
				kr.k.n++
			}
		}
	}
	for _, kr := range sh.keys {
		if kr.kind == kindMetrics {
			if hasLogs {
				d.update(kr.id, kr.k, now, &logs, &has, &candidates)
			} else {
				kr.k.n++
				kr.k.t = now
			}
		}
	}
	if r.Error {
		d.errors(sh.keys, now, &candidates)
	}
	if len(candidates) > 0 {
		findings = append(findings, d.resolve(r, sh.keys, candidates)...)
	}
	if traceFinding != nil {
		findings = append(findings, *traceFinding)
	}
	if f := d.repeats.observe(r); f != nil {
		findings = append(findings, *f)
	}
	return findings
}

// shape: the keys of a (model, dims), looked up once, then cached until keys are evicted.
func (d *Detector) shape(r *Record, sid string) *shape {
	now := r.Time
	keys := make([]keyRef, 0, 1+2*len(r.Dims))
	add := func(id keyID, kind int) {
		k := d.keys[id]
		if k == nil {
			k = newKeyBaseline(now, d.seq)
			d.seq++
			d.keys[id] = k
		}
		keys = append(keys, keyRef{id, k, kind})
	}
	// Cost and token baselines are kept on the finest key of what the call does (its model and
	// prompt, else service, else the model alone) and on the keys of who makes it; the model's and
	// the service's coarser keys keep calls and errors only.
	content := ""
	if _, ok := r.dim(DimPrompt); ok {
		content = DimPrompt
	} else if _, ok := r.dim(DimService); ok {
		content = DimService
	}
	if content == "" {
		add(keyID{r.Model, "*", "*"}, kindMetrics)
	} else {
		add(keyID{r.Model, "*", "*"}, kindCounts)
	}
	for _, dim := range r.Dims {
		if (dim.Name == DimPrompt || dim.Name == DimService) && dim.Name != content {
			add(keyID{r.Model, dim.Name, dim.Value}, kindCounts)
		} else {
			add(keyID{r.Model, dim.Name, dim.Value}, kindMetrics)
		}
		if d.crossDims[dim.Name] {
			// Calls per minute are checked over every model: one model's share of a key is burstier.
			if d.volDims[dim.Name] {
				add(keyID{"*", dim.Name, dim.Value}, kindVolume)
			} else {
				add(keyID{"*", dim.Name, dim.Value}, kindCounts)
			}
		}
	}
	if len(d.keys) > d.opt.MaxKeys {
		d.evictKeys() // (clears the cache) this call's keys stay, evicted or not
		for _, kr := range keys {
			if _, ok := d.keys[kr.id]; !ok {
				kr.k.seq = d.seq
				d.seq++
				d.keys[kr.id] = kr.k
			}
		}
	}
	if len(d.shapes) >= 4*d.opt.MaxKeys {
		clear(d.shapes)
	}
	ref := keys[0].k
	found := false
	for _, kr := range keys {
		if kr.id.dim == DimPrompt && kr.id.model != "*" {
			ref, found = kr.k, true
			break
		}
	}
	if !found {
		for _, kr := range keys {
			if kr.id.dim == DimService && kr.id.model != "*" {
				ref = kr.k
				break
			}
		}
	}
	sh := &shape{keys: keys, usages: d.newModels.entries(r), ref: ref, dims: append([]Dim(nil), r.Dims...)}
	d.shapes[sid] = sh
	return sh
}

// errors: a call with an error (its keys' call counts already include it); the error rates are
// caught up lazily (nothing is done for them on a call without error).
func (d *Detector) errors(keys []keyRef, now float64, out *[]candidate) {
	for _, kr := range keys {
		k := kr.k
		n := k.n
		ef, es := k.errorRates(n-1, now)
		ef += AlphaErrFast * (1.0 - ef)
		if n >= WarmCalls && ef >= ErrorRate && ef >= errorOverSlow*es+errorSlack {
			*out = append(*out, candidate{ErrorSpike, -2, ef / ErrorRate, ef / math.Max(es, errorMinBase), kr.id, k, ef, es})
		}
		if ef < ErrorRate { // the baseline does not learn an ongoing spike
			a := errorSlowAlpha
			if n < errorSlowWarm {
				a = 1.0 / float64(n)
			}
			es += a * (1.0 - es)
		}
		k.ef, k.es, k.en, k.et = ef, es, n, now
	}
}

// update: a call without error on a key with cost and token baselines.
func (d *Detector) update(kid keyID, k *keyBaseline, now float64, logs *[3]float64, has *[3]bool, out *[]candidate) {
	dt := now - k.t
	relax := 0.0 // what is left of the fast means' excess after a gap
	if dt > fastRelaxAfter {
		relax = math.Exp(-dt / TauRelax)
	}
	k.t = now
	k.n++
	for i := 0; i < 3; i++ {
		if !has[i] {
			continue
		}
		x := logs[i]
		k.nm[i]++
		c := k.nm[i]
		m := k.mu[i]
		dd := x - m
		switch {
		case c > WarmCalls:
			f := k.fa[i]
			if relax != 0 {
				f = m + (f-m)*relax
			}
			f = f + AlphaFast*(x-f)
			k.fa[i] = f
			scale := k.dv[i]
			if scale < MinScale {
				scale = MinScale
			}
			threshold := d.spikeK * scale
			if threshold < d.minLog {
				threshold = d.minLog
			}
			excess := f - m
			if excess > spikeEnter*threshold {
				// A key in (or entering) a spike: its baseline barely learns, its scale not at all.
				if excess > threshold && dd > threshold { // (the call itself is part of the spike)
					typ := CostSpike
					if i != 0 {
						typ = TokenSpike
					}
					*out = append(*out, candidate{typ, i, excess / threshold, math.Exp(excess), kid, k, math.Exp(f), math.Exp(m)})
				}
				step := dd
				if dd > scale {
					step = scale
				} else if dd < -scale {
					step = -scale
				}
				k.mu[i] = m + alphaSpike*step
				continue
			}
			lim := winsorDevs * scale
			if dd > lim {
				dd = lim
			} else if dd < -lim {
				dd = -lim
			}
			k.mu[i] = m + AlphaSlow*dd
			k.dv[i] = scale + AlphaSlow*(devScale*math.Abs(dd)-scale)
		case c == 1:
			k.mu[i], k.fa[i] = x, x
		default: // warming up: plain means
			k.fa[i] += AlphaFast * (x - k.fa[i])
			a := 1.0 / float64(c)
			k.mu[i] = m + a*dd
			k.dv[i] += a * (devScale*math.Abs(dd) - k.dv[i])
		}
	}
}

// resolve turns the strongest candidate of each type into a finding with its cause; one finding
// per incident: a finding of the type within the cooldown whose cause is one of this call's values
// (or its model) holds this one too, and a finding of the same type and cause within the cooldown
// is not reported again.
func (d *Detector) resolve(r *Record, keys []keyRef, candidates []candidate) []Finding {
	tokensUp := map[keyID]bool{}
	for _, c := range candidates {
		if c.typ == TokenSpike {
			tokensUp[c.kid] = true
		}
	}
	var order []string
	best := map[string]candidate{}
	for _, c := range candidates {
		if c.typ == CostSpike && (tokensUp[c.kid] || c.k.tokensUp()) {
			continue // the tokens explain the cost: reported as a token spike
		}
		if r.Time-c.k.cool[typeIndex(c.typ)] < Cooldown {
			continue
		}
		b, ok := best[c.typ]
		if !ok {
			order = append(order, c.typ)
		}
		if !ok || c.strength > b.strength {
			best[c.typ] = c
		}
	}
	var findings []Finding
	for _, typ := range order {
		c := best[typ]
		if d.earlier(typ, r) == nil {
			cause := d.cause(typ, c, r)
			var metric string
			switch c.i {
			case -1:
				metric = "calls_per_minute"
			case -2:
				metric = "error_rate"
			default:
				metric = metricNames[c.i]
			}
			level := severity(c.ratio)
			if typ == ErrorSpike {
				level = "warning"
				if c.observed >= errorCritical {
					level = "critical"
				}
			}
			f := &Finding{Type: typ, Score: score(c.strength), Severity: level, Cause: cause,
				Metric: metric, Observed: c.observed, Baseline: c.baseline, Key: keyName(c.kid), Time: r.Time,
				TraceID: r.TraceID, Model: r.Model}
			ck := causeKey{typ, cause.Dimension, cause.Value}
			if e := d.byCause[ck]; e == nil || r.Time-e.Time >= Cooldown {
				if len(d.byCause) >= d.opt.MaxKeys {
					clear(d.byCause)
				}
				d.byCause[ck] = f
				findings = append(findings, *f)
			}
		}
		ti := typeIndex(typ)
		for _, kr := range keys { // one finding per incident: the call's other keys cool down too
			kr.k.cool[ti] = r.Time
		}
	}
	return findings
}

// earlier: a finding of typ within the cooldown whose cause is the call's model or one of its values.
func (d *Detector) earlier(typ string, r *Record) *Finding {
	if len(d.byCause) == 0 {
		return nil
	}
	if f := d.byCause[causeKey{typ, DimModel, r.Model}]; f != nil && r.Time-f.Time < Cooldown {
		return f
	}
	for _, dim := range r.Dims {
		if f := d.byCause[causeKey{typ, dim.Name, dim.Value}]; f != nil && r.Time-f.Time < Cooldown {
			return f
		}
	}
	return nil
}

// cause: the dimension and value holding the excess (causes.go); computed only for a finding.
func (d *Detector) cause(typ string, c candidate, r *Record) Cause {
	if c.i == -1 {
		return d.volumeCause(c.kid, r.Time)
	}
	metric := c.i
	if metric < 0 {
		metric = 3
	}
	every := c.kid.model == "*"
	return d.ring.cause(metric, r.Time, r.Model, r.Dims, d.ranks[typ], every, c.kid.dim, c.kid.value)
}

// evictKeys keeps the MaxKeys * 0.9 keys seen most recently, a key's calls counting for recency (an
// hour per e-fold of calls).
func (d *Detector) evictKeys() {
	type entry struct {
		id    keyID
		k     *keyBaseline
		score float64
	}
	all := make([]entry, 0, len(d.keys))
	for id, k := range d.keys {
		all = append(all, entry{id, k, k.t + evictCallsHours*math.Log1p(float64(k.n))})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].k.seq < all[b].k.seq })
	sort.SliceStable(all, func(a, b int) bool { return all[a].score > all[b].score })
	keep := int(float64(d.opt.MaxKeys) * evictKeep)
	clear(d.keys)
	clear(d.shapes)
	for j, e := range all[:keep] {
		e.k.seq = j
		d.keys[e.id] = e.k
	}
	d.seq = keep
}

func keyName(kid keyID) string {
	if kid.dim == "*" {
		return kid.model + "/*"
	}
	return kid.model + "/" + kid.dim + "=" + kid.value
}
