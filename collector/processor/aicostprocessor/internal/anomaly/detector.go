package anomaly

import (
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

type keyRef struct {
	id  keyID
	k   *keyBaseline
	vol bool // runs per minute are checked on it
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

// Detector is the online detector. Safe for concurrent use (one lock).
type Detector struct {
	mu        sync.Mutex
	opt       Options
	rank      map[string]int
	crossDims map[string]bool
	volDims   map[string]bool
	spikeK    float64
	minLog    float64
	keys      map[keyID]*keyBaseline
	seq       int
	newModels *newModelWatch
	traces    *traceWatch
	repeats   *repeatWatch
}

// New returns a detector; zero Options fields take their defaults.
func New(o Options) *Detector {
	d := &Detector{opt: o.withDefaults(), rank: map[string]int{}, crossDims: map[string]bool{}, volDims: map[string]bool{},
		spikeK: SpikeDeviations * fastNoise, minLog: math.Log(MinSpikeRatio), keys: map[keyID]*keyBaseline{}}
	for i, dim := range d.opt.Dimensions {
		if _, ok := d.rank[dim]; !ok {
			d.rank[dim] = i
		}
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
	return len(d.keys), len(d.traces.traces), len(d.repeats.entries)
}

// Observe feeds one finished call and returns the findings it triggers: spikes, then a new model,
// a runaway trace and a retry storm.
func (d *Detector) Observe(r *Record) []Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observe(r)
}

func (d *Detector) observe(r *Record) []Finding {
	now := r.Time
	var findings []Finding
	var logs [3]float64
	var has [3]bool
	lin := [4]float64{0, 0, 0, 1}
	errV := 1.0
	if !r.Error {
		errV = 0
		for i, x := range [3]float64{r.Cost, float64(r.InputTokens), float64(r.OutputTokens)} {
			if x != 0 {
				logs[i], has[i] = math.Log(x), true
			}
		}
		lin = [4]float64{r.Cost, float64(r.InputTokens), float64(r.OutputTokens), 0}
	}
	keys := make([]keyRef, 0, 1+2*len(r.Dims))
	add := func(id keyID, vol bool) {
		k := d.keys[id]
		if k == nil {
			k = newKeyBaseline(now, d.seq)
			d.seq++
			d.keys[id] = k
			if len(d.keys) > d.opt.MaxKeys {
				d.evictKeys()
			}
		}
		keys = append(keys, keyRef{id, k, vol})
	}
	add(keyID{r.Model, "*", "*"}, false)
	for _, dim := range r.Dims {
		add(keyID{r.Model, dim.Name, dim.Value}, false)
		if d.crossDims[dim.Name] {
			// Calls per minute are checked over every model: one model's share of a key is burstier.
			add(keyID{"*", dim.Name, dim.Value}, d.volDims[dim.Name])
		}
	}
	var traceFinding *Finding
	newRun := true // calls per minute count runs (traces)
	if r.TraceID != "" {
		_, open := d.traces.traces[r.TraceID]
		newRun = !open
		traceFinding = d.traces.observe(r)
	}
	var candidates []candidate
	for _, kr := range keys {
		d.update(kr.id, kr.k, now, &logs, &has, &lin, errV, kr.vol, newRun, &candidates)
	}
	if len(candidates) > 0 {
		findings = append(findings, d.resolve(r, keys, candidates)...)
	}
	if len(d.newModels.dims) > 0 {
		if f := d.newModels.observe(r, logs[0], has[0]); f != nil {
			findings = append(findings, *f)
		}
	}
	if traceFinding != nil {
		findings = append(findings, *traceFinding)
	}
	if f := d.repeats.observe(r); f != nil {
		findings = append(findings, *f)
	}
	return findings
}

func (d *Detector) update(kid keyID, k *keyBaseline, now float64, logs *[3]float64, has *[3]bool, lin *[4]float64,
	errV float64, vol, newRun bool, out *[]candidate) {
	dt := now - k.t
	sums := &k.sums
	if dt > 0 {
		df := math.Exp(-dt / TauFast)
		k.cf *= df
		for i := range sums {
			sums[i] = sums[i]*df + lin[i]
		}
		if vol {
			k.tf *= df
			k.ts *= math.Exp(-dt / TauSlow)
		}
		k.t = now
	} else {
		for i := range sums {
			sums[i] += lin[i]
		}
	}
	if hour := int64(floorDiv(now, 3600)); hour != k.hour {
		k.rollHour(hour, now)
	}
	k.hcount++
	k.n++
	// runs (traces) per minute, on the every-model keys of the volume dimensions
	if vol && newRun {
		if k.n > volumeMinCalls && now-k.first >= TauSlow {
			expected := k.expectedFast(now)
			scale := math.Max(devScale*k.rdev, math.Sqrt(expected))
			dev := k.tf + 1 - expected
			threshold := math.Max(VolumeRatio*expected, expected+VolumeDeviations*scale+volumeSlack)
			if k.tf+1 > threshold {
				*out = append(*out, candidate{VolumeSpike, -1, (k.tf + 1 - expected) / (threshold - expected),
					(k.tf + 1) / math.Max(expected, 1e-9), kid, k, (k.tf + 1) * 60 / TauFast, expected * 60 / TauFast})
			} else if k.tf+1 < 2*expected+volumeSlack { // the burstiness is learned from normal traffic only
				k.rdev += burstAlpha * (math.Min(math.Abs(dev), 3*math.Sqrt(expected)+3) - k.rdev)
			}
		}
		k.tf++
		k.ts++
	}
	k.cf++
	k.cs++
	// errors
	k.ef = k.ef + AlphaErrFast*(errV-k.ef)
	ef := k.ef
	if errV != 0 && k.n >= WarmCalls && ef >= ErrorRate && ef >= errorOverSlow*k.es+errorSlack {
		*out = append(*out, candidate{ErrorSpike, -2, ef / ErrorRate, ef / math.Max(k.es, errorMinBase), kid, k, ef, k.es})
	}
	if ef < ErrorRate { // the baseline does not learn an ongoing spike
		a := errorSlowAlpha
		if k.n < errorSlowWarm {
			a = 1.0 / float64(k.n)
		}
		k.es += a * (errV - k.es)
	}
	// cost and tokens per call
	for i := 0; i < 3; i++ {
		if !has[i] {
			continue
		}
		x := logs[i]
		k.nm[i]++
		n := k.nm[i]
		if n == 1 {
			k.mu[i], k.fa[i] = x, x
			continue
		}
		m := k.mu[i]
		k.fa[i] = k.fa[i] + AlphaFast*(x-k.fa[i])
		f := k.fa[i]
		scale := devScale * k.dv[i]
		if scale < minLogScale {
			scale = minLogScale
		}
		dd := x - m
		var a float64
		if n > WarmCalls {
			threshold := d.spikeK * scale
			if threshold < d.minLog {
				threshold = d.minLog
			}
			if f-m > threshold {
				excess := f - m
				typ := CostSpike
				if i != 0 {
					typ = TokenSpike
				}
				*out = append(*out, candidate{typ, i, excess / threshold, math.Exp(excess), kid, k, math.Exp(f), math.Exp(m)})
			}
			lim := winsorDevs * scale
			if dd > lim {
				dd = lim
			} else if dd < -lim {
				dd = -lim
			}
			a = AlphaSlow
		} else {
			a = 1.0 / float64(n)
		}
		k.mu[i] = m + a*dd
		k.dv[i] += a * (math.Abs(dd) - k.dv[i])
	}
}

// resolve turns the strongest candidate of each type into a finding with its cause.
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
		cause := d.cause(c, keys, r)
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
		findings = append(findings, Finding{Type: typ, Score: score(c.strength), Severity: level, Cause: cause,
			Metric: metric, Observed: c.observed, Baseline: c.baseline, Key: keyName(c.kid), Time: r.Time,
			TraceID: r.TraceID, Model: r.Model})
		ti := typeIndex(typ)
		for _, kr := range keys { // one finding per incident: the call's other keys cool down too
			kr.k.cool[ti] = r.Time
		}
	}
	return findings
}

type share struct {
	share      float64
	rank       int
	dim, value string
}

// cause: the record's key with the largest share of the excess of the reference population: the
// model's calls for a per-model key, the key itself for an every-model key (then the model is a
// candidate dimension).
func (d *Detector) cause(c candidate, keys []keyRef, r *Record) Cause {
	kid, k, i := c.kid, c.k, c.i
	scope := kid.model
	ref := k
	if scope != "*" {
		if m := d.keys[keyID{scope, "*", "*"}]; m != nil {
			ref = m
		}
	}
	base := baselineValue(i, ref)
	if i == -2 { // the firing key's error baseline is frozen during the spike; the model's may not be
		base = math.Min(base, k.es)
	}
	total := excess(i, ref, base)
	var shares []share
	for _, kr := range keys {
		okid, o := kr.id, kr.k
		if okid == (keyID{scope, "*", "*"}) {
			continue
		}
		var dim, value string
		if scope == "*" {
			if okid.model == "*" || okid.dim != kid.dim || okid.value != kid.value || o.cf >= causeCovers*ref.cf {
				continue // (a model that covers all of the key's calls explains nothing more)
			}
			dim, value = DimModel, okid.model
		} else {
			if okid.model == "*" {
				continue
			}
			if ref != k && o.cf >= causeCovers*ref.cf {
				continue // a value that covers all of the model's calls explains nothing more
			}
			dim, value = okid.dim, okid.value
		}
		e := excess(i, o, base)
		s := 0.0
		if total > 0 {
			s = math.Min(1.0, math.Max(0.0, e/total))
		}
		rank, ok := d.rank[dim]
		if !ok {
			rank = len(d.rank)
		}
		shares = append(shares, share{s, rank, dim, value})
	}
	top := 0.0
	for _, s := range shares {
		if s.share > top {
			top = s.share
		}
	}
	if top < causeMinShare {
		// No one value explains it: the model, or the every-model key's own value.
		if scope != "*" {
			return Cause{DimModel, r.Model, 1.0}
		}
		return Cause{kid.dim, kid.value, 1.0}
	}
	var pick *share
	for j := range shares { // the first dimension (in Dimensions order) within causeTie of the largest share
		s := &shares[j]
		if s.share >= top-causeTie && (pick == nil || s.rank < pick.rank) {
			pick = s
		}
	}
	return Cause{pick.dim, pick.value, pick.share}
}

func baselineValue(i int, ref *keyBaseline) float64 {
	switch i {
	case -1:
		return 0
	case -2:
		return ref.es
	}
	return math.Exp(ref.mu[i])
}

func excess(i int, o *keyBaseline, base float64) float64 {
	switch i {
	case -1: // runs above expectation in the fast window
		return o.tf - o.expectedFast(o.t)
	case -2:
		return o.sums[3] - o.cf*base
	}
	return o.sums[i] - o.cf*base
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
