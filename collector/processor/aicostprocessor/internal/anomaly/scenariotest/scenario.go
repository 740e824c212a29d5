// Package scenariotest reads the anomaly scenarios written by scripts/anomaly_vectors.py
// (tests/vectors/anomalies/*.jsonl): calls of the seeded traffic generator and the findings the
// Python detector gave for each. For tests only.
package scenariotest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Header is a scenario file's first line.
type Header struct {
	Scenario   string             `json:"scenario"`
	Detector   map[string]float64 `json:"detector"`   // AnomalyDetector keyword arguments
	Parameters map[string]float64 `json:"parameters"` // the Python detector's defaults and constants
	Dimensions []string           `json:"dimensions"` // the order of Call.D
}

// Finding is a finding of the Python detector.
type Finding struct {
	Type     string  `json:"type"`
	Severity string  `json:"severity"`
	Score    float64 `json:"score"`
	Cause    string  `json:"cause"`
	Share    float64 `json:"share"`
	Metric   string  `json:"metric"`
	Observed float64 `json:"observed"`
	Baseline float64 `json:"baseline"`
	Key      string  `json:"key"`
}

// Call is one call of a scenario; nil = absent.
type Call struct {
	T        float64   `json:"t"` // end time, s since the epoch, rounded to the millisecond
	Model    string    `json:"model"`
	Trace    string    `json:"trace"` // 32 hex digits
	Cost     *float64  `json:"cost"`
	In       *int64    `json:"in"`
	Out      *int64    `json:"out"`
	Est      *int64    `json:"est"` // absent: as In
	Err      int       `json:"err"`
	D        []*string `json:"d"` // values of Header.Dimensions
	Findings []Finding `json:"f"`
}

// Estimate is the call's estimated input tokens (0 when none).
func (c *Call) Estimate() int64 {
	if c.Est != nil {
		return *c.Est
	}
	if c.In != nil {
		return *c.In
	}
	return 0
}

// Dir is tests/vectors/anomalies of the repository.
func Dir(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "..", "..", "tests", "vectors", "anomalies")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("scenario files: %v", err)
	}
	return dir
}

// Names lists the scenario files.
func Names(t testing.TB) []string {
	names, err := filepath.Glob(filepath.Join(Dir(t), "*.jsonl"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	return names
}

// Read reads one scenario file.
func Read(t testing.TB, name string) (Header, []Call) {
	f, err := os.Open(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var h Header
	var calls []Call
	for n := 0; sc.Scan(); n++ {
		if n == 0 {
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
				t.Fatalf("%s header: %v", name, err)
			}
			continue
		}
		var c Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s line %d: %v", name, n+1, err)
		}
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(h.Dimensions) == 0 || len(calls) == 0 {
		t.Fatalf("%s: no dimensions or no calls", name)
	}
	return h, calls
}
