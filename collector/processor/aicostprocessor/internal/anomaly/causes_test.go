package anomaly

import "testing"

// A reference baseline warm for cost and tokens: log mean 0, scale 0.5 (so a call at log 3 is
// 3 / 0.5 - CusumDrift = 4 above the drift, a call at log 0 is -2).
func warmRef() *keyBaseline {
	k := newKeyBaseline(0, 0)
	k.n = 100
	k.nm = [3]int{WarmCalls + 1, WarmCalls + 1, WarmCalls + 1}
	k.dv = [3]float64{0.5, 0.5, 0.5}
	return k
}

func ringOf(calls ...ringCall) *callRing {
	r := &callRing{}
	for _, c := range calls {
		r.add(c, CauseCalls)
	}
	return r
}

func costCall(t float64, model string, x float64, ref *keyBaseline, dims ...Dim) ringCall {
	return ringCall{t: t, model: model, dims: dims, logs: [3]float64{x, x, x}, has: [3]bool{true, true, true}, hasLogs: true, ref: ref}
}

func TestCauseIsTheCandidateWithTheLargestCUSUM(t *testing.T) {
	ref := warmRef()
	a, b := Dim{DimTenant, "a"}, Dim{DimTenant, "b"}
	now := 1000.0
	// model m: +4, -2, +4 -> CUSUM 4, 2, 6; tenant a: +4, +4 -> 8 (over every model and within m:
	// a tie, named the same); tenant b: -2 -> 0.
	r := ringOf(costCall(now, "m", 3, ref, a), costCall(now, "m", 0, ref, b), costCall(now, "m", 3, ref, a))
	got := r.cause(0, now, "m", []Dim{a}, causeRanks(DefaultDimensions, DimTenant, DimUser, DimService), false, "", "")
	// share: tenant a's deviations (3 + 3) over the model's (3 + 0 + 3)
	if got != (Cause{DimTenant, "a", 1.0}) {
		t.Fatalf("cause %+v", got)
	}
	// the drift: a call 10 minutes old is out of the replay; one 5 minutes old weighs 1/e
	r = ringOf(costCall(now-2*TauCause-1, "m", 9, ref, b), costCall(now-TauCause, "m", 3, ref, b), costCall(now, "m", 3, ref, a))
	got = r.cause(0, now, "m", []Dim{a}, causeRanks(DefaultDimensions), false, "", "")
	// model: 4/e then 4/e + 4; tenant a: 4: the model holds more (the prompt-less token order
	// would name the tenant on a tie, so the model's CUSUM is above 1/0.99 of a's)
	if got != (Cause{DimModel, "m", 1.0}) {
		t.Fatalf("cause %+v", got)
	}
}

func TestCauseTiesAreBrokenByTheFindingsType(t *testing.T) {
	ref := warmRef()
	p, a := Dim{DimPrompt, "p"}, Dim{DimTenant, "a"}
	now := 50.0
	// prompt p and tenant a hold the same calls, and one other call of the model is normal
	r := ringOf(costCall(now, "m", 0, ref), costCall(now, "m", 3, ref, p, a), costCall(now, "m", 3, ref, p, a))
	dims := []Dim{p, a}
	if got := r.cause(1, now, "m", dims, causeRanks(DefaultDimensions), false, "", ""); got.Dimension != DimPrompt {
		t.Fatalf("token spike cause %+v, want the prompt", got)
	}
	if got := r.cause(0, now, "m", dims, causeRanks(DefaultDimensions, DimTenant, DimUser, DimService), false, "", ""); got.Dimension != DimTenant {
		t.Fatalf("cost spike cause %+v, want the tenant", got)
	}
	// share: 6 of the model's 6 deviations
	if got := r.cause(0, now, "m", dims, causeRanks(DefaultDimensions, DimTenant), false, "", ""); got.Share != 1.0 {
		t.Fatalf("share %v", got.Share)
	}
}

func TestCauseOfAnEveryModelKeyNamesTheModel(t *testing.T) {
	ref := warmRef()
	a := Dim{DimTenant, "a"}
	now := 10.0
	// tenant a over every model: its calls on model y are the excess (errors), on x normal
	ref.es = 0.0
	ref.en = ref.n
	ref.et = now
	errCall := func(model string, err bool) ringCall {
		return ringCall{t: now, model: model, dims: []Dim{a}, err: err, ref: ref}
	}
	r := ringOf(errCall("x", false), errCall("y", true), errCall("y", true), errCall("x", false))
	got := r.cause(3, now, "x", []Dim{a}, causeRanks(DefaultDimensions, DimModel, DimService, DimTenant, DimUser), true, DimTenant, "a")
	// y: (1 - 0 - 0.15) x 2 = 1.7; tenant a: -0.15 (0), 0.85, 1.7, 1.55: y's 1.7 is the largest
	if got != (Cause{DimModel, "y", 1.0}) {
		t.Fatalf("cause %+v", got)
	}
	// a cold reference: no evidence, the every-model key's value itself
	cold := newKeyBaseline(0, 0)
	r = ringOf(ringCall{t: now, model: "y", dims: []Dim{a}, err: true, ref: cold})
	if got := r.cause(3, now, "y", []Dim{a}, causeRanks(DefaultDimensions), true, DimTenant, "a"); got != (Cause{DimTenant, "a", 1.0}) {
		t.Fatalf("cold cause %+v", got)
	}
}

// The ring keeps the last CauseCalls calls, oldest first.
func TestRingKeepsTheLastCalls(t *testing.T) {
	r := &callRing{}
	for i := 0; i < CauseCalls+5; i++ {
		r.add(ringCall{t: float64(i)}, CauseCalls)
	}
	var ts []float64
	r.each(func(c *ringCall) { ts = append(ts, c.t) })
	if len(ts) != CauseCalls || ts[0] != 5 || ts[len(ts)-1] != CauseCalls+4 {
		t.Fatalf("%d calls, %v .. %v", len(ts), ts[0], ts[len(ts)-1])
	}
}
