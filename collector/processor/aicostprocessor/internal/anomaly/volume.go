package anomaly

import (
	"math"
	"sort"
)

// volume: a new run on a volume key: runs in the last minute and 5 minutes against the expected
// (the counts are decayed at new runs only: t is the last run's time).
func (d *Detector) volume(kid keyID, k *keyBaseline, now float64, out *[]candidate) {
	if dt := now - k.t; dt > 0 {
		k.tf *= math.Exp(-dt / TauFast)
		k.t5 *= math.Exp(-dt / TauMid)
		k.ts *= math.Exp(-dt / TauSlow)
		k.t = now
	}
	k.n++
	weight := 1.0 // of this run in the slow count
	age := now - k.first
	if k.n > volumeMinCalls && age >= TauSlow {
		var rate float64
		if age < volumeWarmSlows*TauSlow {
			rate = k.ts / TauSlow / (1.0 - math.Exp(-age/TauSlow))
		} else {
			rate = k.ts / TauSlow
		}
		if k.season != nil && age > seasonUse {
			rate = k.expectedRate(now)
		}
		e1, e5 := rate*TauFast, rate*TauMid
		o1, o5 := k.tf+1, k.t5+1
		cap1, cap5 := 2*e1+volumeSlack, 2*e5+volumeSlack // under both thresholds (volumeFast)
		if o1 < cap1 && o5 < cap5 && volumeFast {
			// normal traffic: the burstiness is learned from it only
			dev := math.Abs(o1 - e1)
			if o1 <= e1 {
				dev = e1 - o1
			}
			if dev > 3.0 {
				if lim := 3*math.Sqrt(e1) + 3; dev > lim {
					dev = lim
				}
			}
			k.rdev += burstAlpha * (dev - k.rdev)
		} else {
			root := math.Sqrt(e1)
			burst := 1.0 // learned overdispersion
			if root > 0 {
				burst = devScale * k.rdev / root
			}
			if burst < 1.0 {
				burst = 1.0
			}
			thr1 := math.Max(VolumeRatio*e1, e1+VolumeDeviations*burst*root+volumeSlack)
			thr5 := math.Max(VolumeRatio*e5, e5+VolumeDeviations*burst*math.Sqrt(e5)+volumeSlack)
			if o1 > thr1 || o5 > thr5 {
				s1, s5 := (o1-e1)/(thr1-e1), (o5-e5)/(thr5-e5)
				if s1 >= s5 {
					*out = append(*out, candidate{VolumeSpike, -1, s1, o1 / math.Max(e1, 1e-9), kid, k,
						o1 * 60 / TauFast, e1 * 60 / TauFast})
				} else {
					*out = append(*out, candidate{VolumeSpike, -1, s5, o5 / math.Max(e5, 1e-9), kid, k,
						o5 * 60 / TauMid, e5 * 60 / TauMid})
				}
			}
			if o1 < cap1 && o5 < cap5 {
				k.rdev += burstAlpha * (math.Min(math.Abs(o1-e1), 3*root+3) - k.rdev)
			} else { // nor does the slow rate learn a spike at full weight
				weight = math.Min(1.0, math.Min(cap1/o1, cap5/o5))
			}
		}
	}
	k.tf++
	k.t5++
	k.ts += weight
	if hour := int64(floorDiv(now, 3600)); hour != k.hour {
		k.rollHour(hour, now)
	}
	k.hcount += weight
}

// volumeCause: of the firing key and the every-model keys of the other volume dimensions, the one
// with the fewest expected runs whose runs in the last minute exceed the expected by at least
// volumeCauseShare of the largest such excess. A scan of the keys, made only for a volume spike.
func (d *Detector) volumeCause(kid keyID, now float64) Cause {
	own := d.keys[kid]
	if own == nil {
		return Cause{kid.dim, kid.value, 1.0}
	}
	type vc struct {
		excess, expected float64
		id               keyID
		seq              int
	}
	var others []vc
	for okid, o := range d.keys {
		if okid.model == "*" && okid.dim != kid.dim && d.volDims[okid.dim] {
			others = append(others, vc{0, 0, okid, o.seq})
		}
	}
	sort.Slice(others, func(a, b int) bool { return others[a].seq < others[b].seq }) // (the Python dict's order)
	all := append([]vc{{0, 0, kid, 0}}, others...)
	var cands []vc
	for _, c := range all {
		o := d.keys[c.id]
		if o.n > volumeMinCalls {
			expected := o.expectedFast(now)
			cands = append(cands, vc{o.tf*math.Exp(-(now-o.t)/TauFast) - expected, expected, c.id, 0})
		}
	}
	top := 0.0
	for j, c := range cands {
		if j == 0 || c.excess > top {
			top = c.excess
		}
	}
	if len(cands) == 0 || top <= 0 {
		return Cause{kid.dim, kid.value, 1.0}
	}
	pick := -1
	for j, c := range cands {
		if c.excess >= volumeCauseShare*top && (pick < 0 || c.expected < cands[pick].expected) {
			pick = j
		}
	}
	b := cands[pick]
	return Cause{b.id.dim, b.id.value, math.Min(1.0, math.Max(0.0, b.excess/top))}
}
