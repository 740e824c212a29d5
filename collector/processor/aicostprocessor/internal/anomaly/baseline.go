package anomaly

import "math"

var fastNoise = math.Sqrt(AlphaFast / (2 - AlphaFast))

var metricNames = [3]string{"cost_per_call", "input_tokens_per_call", "output_tokens_per_call"}

// keyBaseline is the baselines of one (model, dimension, value) (the Python KeyBaseline).
type keyBaseline struct {
	t, first             float64
	n                    int
	cf, cs, tf, ts, rdev float64
	sums                 [4]float64 // decayed (fast) sums of cost, input, output tokens and errors
	nm                   [3]int
	mu, dv, fa           [3]float64
	es, ef               float64
	cool                 [numTypes]float64
	hour                 int64
	hcount               int
	season               []float64
	seq                  int // insertion order, the tie-break of evictions
}

func newKeyBaseline(now float64, seq int) *keyBaseline {
	k := &keyBaseline{t: now, first: now, hour: int64(floorDiv(now, 3600)), seq: seq}
	for i := range k.cool {
		k.cool[i] = math.Inf(-1)
	}
	return k
}

// expectedFast: calls expected in the fast window: the slow rate (corrected for a short history),
// or the same hour of the week once a week of history exists, whichever is higher.
func (k *keyBaseline) expectedFast(now float64) float64 {
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
		seasonal := k.season[int64(floorDiv(now, 3600))%WeekHours] / 60.0
		if seasonal > rate {
			rate = seasonal
		}
	}
	return rate * TauFast
}

// rollHour closes the hours since the last call into the hour-of-week counts (kept after a day).
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
				value = float64(k.hcount)
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

// tokensUp: the fast input or output tokens per call run well above their baseline.
func (k *keyBaseline) tokensUp() bool {
	for _, i := range [2]int{1, 2} {
		if k.nm[i] > WarmCalls && k.fa[i]-k.mu[i] > tokensUpLog {
			return true
		}
	}
	return false
}
