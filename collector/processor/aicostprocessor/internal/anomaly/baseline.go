package anomaly

import "math"

var fastNoise = math.Sqrt(AlphaFast / (2 - AlphaFast))

// alphaSpike: how fast a key's baseline learns while the key is in a spike (ALPHA_SLOW / 10,
// divided at run time as Python divides).
var alphaSpike = func() float64 { a := AlphaSlow; return a / spikeSlowDown }()

// errFastKeep: what a call without error keeps of the fast error rate (1.0 - ALPHA_ERR_FAST at run time).
var errFastKeep = func() float64 { a := AlphaErrFast; return 1.0 - a }()

var metricNames = [3]string{"cost_per_call", "input_tokens_per_call", "output_tokens_per_call"}

// keyBaseline is the baselines of one (model, dimension, value) (the Python KeyBaseline).
// tf / t5 / ts: runs in the last minute, 5 minutes and 30 minutes (decayed, volume keys only).
// es / ef: slow and fast error rates as of call en at time et (the last error).
type keyBaseline struct {
	t, first   float64
	n          int
	tf, t5, ts float64
	rdev       float64
	nm         [3]int
	mu, dv, fa [3]float64
	es, ef     float64
	en         int
	et         float64
	cool       [numTypes]float64
	hour       int64
	hcount     float64
	season     []float64
	seq        int // insertion order (the Python dict's), the tie-break of evictions and volume causes
}

func newKeyBaseline(now float64, seq int) *keyBaseline {
	k := &keyBaseline{t: now, first: now, et: now, hour: int64(floorDiv(now, 3600)), seq: seq}
	for i := range k.cool {
		k.cool[i] = math.Inf(-1)
	}
	return k
}

// expectedRate: runs per second expected: the slow rate (corrected for a short history), or the
// same hour of the week once a week of history exists, whichever is higher.
func (k *keyBaseline) expectedRate(now float64) float64 {
	age := now - k.first
	warm := 0.0
	if age > 0 {
		warm = 1.0 - math.Exp(-age/TauSlow)
	}
	rate := 0.0
	if warm > 0 {
		rate = k.ts / TauSlow / warm
	}
	if k.season != nil && age > seasonUse {
		seasonal := k.season[int64(floorDiv(now, 3600))%WeekHours] / 3600.0
		if seasonal > rate {
			rate = seasonal
		}
	}
	return rate
}

// expectedFast: runs expected in the last minute.
func (k *keyBaseline) expectedFast(now float64) float64 { return k.expectedRate(now) * TauFast }

// rollHour closes the hours since the last run into the hour-of-week counts (kept after a day).
func (k *keyBaseline) rollHour(hour int64, now float64) {
	if k.season == nil && now-k.first >= seasonAfter {
		k.season = make([]float64, WeekHours)
	}
	if k.season != nil {
		gap := hour - k.hour
		if gap > WeekHours {
			gap = WeekHours
		}
		for h := int64(0); h < gap; h++ {
			slot := (k.hour + h) % WeekHours
			value := 0.0
			if h == 0 {
				value = k.hcount
			}
			old := k.season[slot]
			if old == 0 {
				k.season[slot] = value
			} else {
				k.season[slot] = 0.5*old + 0.5*value
			}
		}
	}
	k.hour = hour
	k.hcount = 0
}

// errorRates: the fast and slow error rates after call n at now, no call since en having had an
// error: per call the fast rate loses AlphaErrFast of itself and the slow one 1/n of itself
// (errorSlowAlpha from call errorSlowWarm); over time the fast one falls back to the slow one.
func (k *keyBaseline) errorRates(n int, now float64) (float64, float64) {
	ef, es, a := k.ef, k.es, k.en
	if n > a {
		hi := n
		if hi >= errorSlowWarm-1 {
			hi = errorSlowWarm - 1
		}
		if a < hi {
			es *= float64(a) / float64(hi)
		}
		lo := a
		if lo <= errorSlowWarm-1 {
			lo = errorSlowWarm - 1
		}
		if n > lo {
			es *= math.Pow(1-errorSlowAlpha, float64(n-lo))
		}
		ef *= math.Pow(errFastKeep, float64(n-a))
	}
	if dt := now - k.et; dt > errorRelaxAfter {
		ef = es + (ef-es)*math.Exp(-dt/TauRelax)
	}
	return ef, es
}

// tokensUp: the fast input or output tokens per call run well above their baseline.
func (k *keyBaseline) tokensUp() bool {
	for _, i := range [2]int{1, 2} {
		if k.nm[i] > WarmCalls && k.fa[i]-k.mu[i] > tokensUpLog {
			return true
		}
	}
	return false
}
