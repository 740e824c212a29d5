// Package promqlcheck tests the PromQL of dashboards/otel-ai-cost-prometheus.json with the real
// Prometheus parser and engine, on the series of testdata/series.txt: every query parses, selects
// metrics and labels that exist, and returns data; a few return hand-computed values. The collector
// lines of series.txt are checked against the names otlptranslator (the code of Prometheus's OTLP
// receiver and of the collector's prometheus exporter) gives the signal_to_metrics metrics of
// collector/config.yaml and the processor telemetry of its metadata.yaml.
package promqlcheck

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"gopkg.in/yaml.v3"
)

const (
	dashboardFile = "../otel-ai-cost-prometheus.json"
	seriesFile    = "testdata/series.txt"
	configFile    = "../../collector/config.yaml"
	metadataFile  = "../../collector/processor/aicostprocessor/metadata.yaml"
	loaded        = 120 * time.Minute // series.txt's default values: 0+1x120 at 1m steps
)

// What Grafana puts in place of its variables, for the evaluation window below.
var substitutions = map[string]string{
	"__range": "1h", "__rate_interval": "5m", "__interval": "1m",
	"service": ".*", "provider": ".*", "tenant": ".*",
}

type series struct {
	source string
	name   string
	labels labels.Labels
	values string
}

var seriesLine = regexp.MustCompile(`^(sdk|collector|telemetry) ([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*?\})(?: (\S+))?$`)

func readSeries(t *testing.T) []series {
	f, err := os.Open(seriesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []series
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := seriesLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: not '<source> <name>{labels} [values]': %q", seriesFile, n, line)
		}
		matchers, err := parser.ParseMetricSelector(m[2] + m[3])
		if err != nil {
			t.Fatalf("%s:%d: %v", seriesFile, n, err)
		}
		b := labels.NewBuilder(labels.EmptyLabels())
		for _, mt := range matchers {
			b.Set(mt.Name, mt.Value) // an empty value is no label, as in Prometheus
		}
		if m[1] != "collector" { // scraped: the scrape adds its target's labels
			b.Set("job", map[string]string{"sdk": "support-bot", "telemetry": "otelcol"}[m[1]])
			b.Set("instance", "127.0.0.1:9464")
		}
		values := m[4]
		if values == "" {
			values = "0+1x120"
		}
		out = append(out, series{m[1], m[2], b.Labels(), values})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadStorage(t *testing.T, all []series) storage.Storage {
	var b strings.Builder
	b.WriteString("load 1m\n")
	for _, s := range all {
		rest := labels.NewBuilder(s.labels).Del(labels.MetricName).Labels()
		fmt.Fprintf(&b, "  %s%s %s\n", s.name, rest.String(), s.values)
	}
	return promqltest.LoadedStorage(t, b.String())
}

type query struct {
	where   string
	expr    string
	instant bool
}

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr    string `json:"expr"`
			Instant bool   `json:"instant"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) (queries []query, variables []query, defined map[string]bool) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	defined = map[string]bool{"__range": true, "__rate_interval": true, "__interval": true}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
		if v.Type == "query" {
			q, _ := v.Query.(map[string]any)["query"].(string)
			variables = append(variables, query{where: "variable " + v.Name, expr: q})
		}
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			queries = append(queries, query{where: fmt.Sprintf("panel %q", p.Title), expr: tg.Expr, instant: tg.Instant})
		}
	}
	if len(queries) < 20 || len(variables) < 3 {
		t.Fatalf("read %d queries and %d query variables from %s", len(queries), len(variables), dashboardFile)
	}
	return queries, variables, defined
}

var variable = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)

func substitute(t *testing.T, q query, defined map[string]bool) string {
	return variable.ReplaceAllStringFunc(q.expr, func(v string) string {
		name := variable.FindStringSubmatch(v)[1]
		value, ok := substitutions[name]
		if !ok || !defined[name] {
			t.Errorf("%s: $%s is not a variable of the dashboard (or of this test): %s", q.where, name, q.expr)
		}
		return value
	})
}

// labelsOf: metric name -> the label names its series carry.
func labelsOf(all []series) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, s := range all {
		if out[s.name] == nil {
			out[s.name] = map[string]bool{}
		}
		s.labels.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				out[s.name][l.Name] = true
			}
		})
	}
	return out
}

// checkNames: each selector names a loaded metric and matches on labels it has; each grouping
// (by, on, ...) uses labels of the metrics below it.
func checkNames(t *testing.T, where, text string, expr parser.Expr, known map[string]map[string]bool) {
	selected := func(node parser.Node) []string {
		var names []string
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for _, m := range vs.LabelMatchers {
					if m.Name != labels.MetricName {
						continue
					}
					for name := range known {
						if m.Matches(name) {
							names = append(names, name)
						}
					}
				}
			}
			return nil
		})
		return names
	}
	has := func(names []string, label string) bool {
		for _, n := range names {
			if known[n][label] {
				return true
			}
		}
		return false
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch e := n.(type) {
		case *parser.VectorSelector:
			names := selected(e)
			if len(names) == 0 {
				t.Errorf("%s: %s selects no metric of series.txt: %s", where, e, text)
			}
			for _, m := range e.LabelMatchers {
				if m.Name != labels.MetricName && !has(names, m.Name) {
					t.Errorf("%s: label %s is on none of %v: %s", where, m.Name, names, text)
				}
			}
		case *parser.AggregateExpr:
			names := selected(e.Expr)
			for _, l := range e.Grouping {
				if !has(names, l) {
					t.Errorf("%s: %s by %s: no such label on %v: %s", where, e.Op, l, names, text)
				}
			}
		case *parser.BinaryExpr:
			if e.VectorMatching != nil {
				names := append(selected(e.LHS), selected(e.RHS)...)
				for _, l := range e.VectorMatching.MatchingLabels {
					if !has(names, l) {
						t.Errorf("%s: matching on %s: no such label on %v: %s", where, l, names, text)
					}
				}
			}
		}
		return nil
	})
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true})
}

func start() time.Time { return time.Unix(0, 0).UTC() }

func TestDashboardQueriesParseSelectKnownNamesAndReturnData(t *testing.T) {
	all := readSeries(t)
	known := labelsOf(all)
	st := loadStorage(t, all)
	engine := newEngine()
	queries, _, defined := readDashboard(t)
	ctx := context.Background()
	for _, q := range queries {
		text := substitute(t, q, defined)
		expr, err := parser.ParseExpr(text)
		if err != nil {
			t.Errorf("%s: does not parse: %v: %s", q.where, err, q.expr)
			continue
		}
		checkNames(t, q.where, text, expr, known)
		// Grafana runs instant targets at the end of the range, the others over it.
		var pq promql.Query
		if q.instant {
			pq, err = engine.NewInstantQuery(ctx, st, nil, text, start().Add(loaded))
		} else {
			pq, err = engine.NewRangeQuery(ctx, st, nil, text, start().Add(loaded/2), start().Add(loaded), time.Minute)
		}
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		res := pq.Exec(ctx)
		if res.Err != nil {
			t.Errorf("%s: %v: %s", q.where, res.Err, text)
		} else if empty(res.Value) {
			t.Errorf("%s: no data on series.txt: %s", q.where, text)
		}
		pq.Close()
	}
}

func empty(v parser.Value) bool {
	switch r := v.(type) {
	case promql.Matrix:
		for _, s := range r {
			for _, p := range s.Floats {
				if !math.IsNaN(p.F) {
					return false
				}
			}
		}
		return true
	case promql.Vector:
		for _, s := range r {
			if !math.IsNaN(s.F) {
				return false
			}
		}
		return true
	case promql.Scalar:
		return math.IsNaN(r.V)
	}
	return true
}

func TestVariableQueriesFindTheirLabel(t *testing.T) {
	all := readSeries(t)
	st := loadStorage(t, all)
	engine := newEngine()
	_, variables, _ := readDashboard(t)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range variables {
		m := labelValues.FindStringSubmatch(v.expr)
		if m == nil {
			t.Errorf("%s: not label_values(<selector>, <label>): %s", v.where, v.expr)
			continue
		}
		if _, err := parser.ParseMetricSelector(m[1]); err != nil {
			t.Errorf("%s: %v", v.where, err)
			continue
		}
		// What Grafana asks Prometheus for (/api/v1/series with match[]): the label's values on those series.
		text := fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		pq, err := engine.NewInstantQuery(context.Background(), st, nil, text, start().Add(loaded))
		if err != nil {
			t.Fatal(err)
		}
		res := pq.Exec(context.Background())
		vec, _ := res.Value.(promql.Vector)
		found := 0
		for _, s := range vec {
			if s.Metric.Get(m[2]) != "" {
				found++
			}
		}
		if res.Err != nil || found == 0 {
			t.Errorf("%s: no value of %s on %s (%v)", v.where, m[2], m[1], res.Err)
		}
		pq.Close()
	}
}

// The PromQL examples of collector/README.md: the code block of its PromQL paragraph (a line
// starting with spaces continues the one before; `# ...` is a comment) and the inline `sum by ...`.
func readmeQueries(t *testing.T) []query {
	raw, err := os.ReadFile("../../collector/README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "**PromQL**")
	end := strings.Index(text, "The most expensive single calls are a trace query")
	if start < 0 || end < start {
		t.Fatal("collector/README.md: no PromQL paragraph")
	}
	section := text[start:end]
	block := section[strings.Index(section, "```\n")+4:]
	block = block[:strings.Index(block, "```")]
	var out []query
	for _, line := range strings.Split(block, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(line, " ") && len(out) > 0 {
			out[len(out)-1].expr += " " + strings.TrimSpace(line)
		} else if strings.TrimSpace(line) != "" {
			out = append(out, query{where: "collector/README.md", expr: strings.TrimSpace(line)})
		}
	}
	for _, m := range regexp.MustCompile("`(sum by [^`]*)`").FindAllStringSubmatch(text, -1) { // anywhere in the README
		out = append(out, query{where: "collector/README.md", expr: m[1]})
	}
	if len(out) < 8 {
		t.Fatalf("collector/README.md: read %d PromQL examples: %v", len(out), out)
	}
	return out
}

func TestCollectorReadmeQueriesParseAndReturnData(t *testing.T) {
	all := readSeries(t)
	known := labelsOf(all)
	st := loadStorage(t, all)
	ctx := context.Background()
	for _, q := range readmeQueries(t) {
		expr, err := parser.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: does not parse: %v: %s", q.where, err, q.expr)
			continue
		}
		checkNames(t, q.where, q.expr, expr, known)
		pq, err := newEngine().NewInstantQuery(ctx, st, nil, q.expr, start().Add(loaded))
		if err != nil {
			t.Fatal(err)
		}
		if res := pq.Exec(ctx); res.Err != nil || empty(res.Value) {
			t.Errorf("%s: no data (%v): %s", q.where, res.Err, q.expr)
		}
		pq.Close()
	}
}

// evalAt: the instant query of the panel titled title (its first target), at the end of the data.
func evalAt(t *testing.T, title string) promql.Vector {
	all := readSeries(t)
	st := loadStorage(t, all)
	queries, _, defined := readDashboard(t)
	for _, q := range queries {
		if q.where == fmt.Sprintf("panel %q", title) {
			pq, err := newEngine().NewInstantQuery(context.Background(), st, nil, substitute(t, q, defined), start().Add(loaded))
			if err != nil {
				t.Fatal(err)
			}
			defer pq.Close()
			res := pq.Exec(context.Background())
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			vec, err := res.Vector()
			if err != nil {
				t.Fatal(err)
			}
			return vec
		}
	}
	t.Fatalf("no panel %q", title)
	return nil
}

func byLabel(vec promql.Vector, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.Get(label)] = s.F
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestSpendByTenantIsTheCostOfTheRange(t *testing.T) {
	// series.txt: the collector's deltas, a sample a minute: acme $0.01, initech $0.02, the calls
	// without a tenant $0.005; summed over $__range = 1h (60 samples, the window is left-open):
	// $0.60, $1.20 and $0.30.
	got := byLabel(evalAt(t, "Spend in the time range by tenant"), "tenant_id")
	want := map[string]float64{"acme": 0.60, "initech": 1.20, "(no tenant)": 0.30}
	for k, v := range want {
		if !near(got[k], v) {
			t.Errorf("tenant %q: got %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	total := evalAt(t, "Spend in the time range")
	if len(total) != 1 || !near(total[0].F, 2.10) {
		t.Errorf("total: got %v, want 2.10", total)
	}
}

func TestBudgetUsedIsSpentOverLimit(t *testing.T) {
	// series.txt at 120m: acme has spent 0.05 x 120 = $6.00 of $10, initech 0.08 x 120 = $9.60.
	got := byLabel(evalAt(t, "Budget used (% of the limit)"), "ai_cost_budget_key")
	if len(got) != 2 || !near(got["acme"], 60) || !near(got["initech"], 96) {
		t.Errorf("got %v, want acme 60, initech 96", got)
	}
}

func TestBlockedCallsCountsBlocks(t *testing.T) {
	// The sdk block decision grows by 1 a minute: 60 in the hour; a Prometheus without blocks shows 0.
	got := evalAt(t, "Blocked calls in the time range")
	if len(got) != 1 || !near(got[0].F, 60) {
		t.Errorf("got %v, want 60", got)
	}
}

// --- the collector's names ---------------------------------------------------------------------

type signalToMetrics struct {
	Connectors struct {
		SignalToMetrics struct {
			Spans []struct {
				Name       string `yaml:"name"`
				Unit       string `yaml:"unit"`
				Attributes []struct {
					Key          string  `yaml:"key"`
					DefaultValue *string `yaml:"default_value"`
					Optional     bool    `yaml:"optional"`
				} `yaml:"attributes"`
				IncludeResourceAttributes []struct {
					Key string `yaml:"key"`
				} `yaml:"include_resource_attributes"`
				Sum *struct {
					Monotonic bool `yaml:"monotonic"`
				} `yaml:"sum"`
				Gauge *struct{} `yaml:"gauge"`
			} `yaml:"spans"`
		} `yaml:"signal_to_metrics"`
	} `yaml:"connectors"`
}

type expected struct {
	required, allowed map[string]bool
}

// The translation Prometheus's OTLP receiver applies by default (UnderscoreEscapingWithSuffixes)
// and the collector's prometheus exporter with its default add_metric_suffixes: true.
var (
	metricNamer = otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes)
	labelNamer  = otlptranslator.LabelNamer{}
)

func build(t *testing.T, namer otlptranslator.MetricNamer, name, unit string, kind otlptranslator.MetricType) string {
	out, err := namer.Build(otlptranslator.Metric{Name: name, Unit: unit, Type: kind})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func label(t *testing.T, key string) string {
	out, err := labelNamer.Build(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func collectorNames(t *testing.T) map[string]expected {
	raw, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg signalToMetrics
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	out := map[string]expected{}
	for _, m := range cfg.Connectors.SignalToMetrics.Spans {
		kind := otlptranslator.MetricType(otlptranslator.MetricTypeGauge)
		if m.Sum != nil {
			kind = otlptranslator.MetricTypeNonMonotonicCounter
			if m.Sum.Monotonic {
				kind = otlptranslator.MetricTypeMonotonicCounter
			}
		} else if m.Gauge == nil {
			t.Fatalf("%s: %s is neither a sum nor a gauge: extend this test", configFile, m.Name)
		}
		e := expected{map[string]bool{}, map[string]bool{}}
		for _, a := range m.Attributes {
			l := label(t, a.Key)
			e.allowed[l] = true
			if !a.Optional {
				e.required[l] = true // present, or its default value
			}
		}
		for _, r := range m.IncludeResourceAttributes {
			if r.Key != "service.name" {
				t.Fatalf("%s: resource attribute %s: Prometheus puts only service.name (as job) and service.instance.id (as instance) on the series; extend this test", configFile, r.Key)
			}
			e.allowed["job"], e.required["job"] = true, true
		}
		out[build(t, metricNamer, m.Name, m.Unit, kind)] = e
	}
	return out
}

func telemetryNames(t *testing.T) map[string]expected {
	raw, err := os.ReadFile(metadataFile)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Telemetry struct {
			Metrics map[string]struct {
				Unit string `yaml:"unit"`
				Sum  *struct {
					Monotonic bool `yaml:"monotonic"`
				} `yaml:"sum"`
			} `yaml:"metrics"`
		} `yaml:"telemetry"`
	}
	if err := yaml.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	// The collector's own metrics carry the otelcol_ prefix and, by default, neither a unit nor a
	// _total suffix (without_units and without_type_suffix default to true for its Prometheus reader:
	// go.opentelemetry.io/collector/service v0.161.0, telemetry/otelconftelemetry/factory.go;
	// tests/test_collector_e2e.py reads these names from the running collector). The processor
	// records these attributes (processor.go, anomalies.go).
	namer := otlptranslator.NewMetricNamer("otelcol", otlptranslator.UnderscoreEscapingWithoutSuffixes)
	attrs := map[string]map[string]bool{
		"processor_ai_cost_spans": {"outcome": true, "malformed_usage": true},
		// Prometheus 3 scrapes with UTF-8 names allowed, and the collector's endpoint then keeps the
		// attributes' dots (seen in tests/test_collector_e2e.py; without that negotiation it escapes them).
		"processor_ai_cost_anomalies": {"ai_cost.anomaly.type": true, "ai_cost.anomaly.severity": true},
	}
	out := map[string]expected{}
	for name, m := range md.Telemetry.Metrics {
		if m.Sum == nil || !m.Sum.Monotonic {
			t.Fatalf("%s: %s is not a monotonic sum: extend this test", metadataFile, name)
		}
		allowed := map[string]bool{"job": true, "instance": true}
		for a := range attrs[name] {
			allowed[a] = true
		}
		out[build(t, namer, name, m.Unit, otlptranslator.MetricTypeMonotonicCounter)] = expected{allowed, allowed}
	}
	return out
}

func TestCollectorSeriesAreNamedAsOTLPTranslatorNamesThem(t *testing.T) {
	want := map[string]map[string]expected{"collector": collectorNames(t), "telemetry": telemetryNames(t)}
	// The rule, on a known case: cost.yaml's `{USD}` unit is an annotation (no unit suffix), a
	// monotonic sum gets _total, a gauge nothing.
	if got := build(t, metricNamer, "ai_cost.spans.cost", "{USD}", otlptranslator.MetricTypeMonotonicCounter); got != "ai_cost_spans_cost_total" {
		t.Errorf("ai_cost.spans.cost: %s", got)
	}
	seen := map[string]bool{}
	for _, s := range readSeries(t) {
		if s.source == "sdk" {
			continue
		}
		e, ok := want[s.source][s.name]
		if !ok {
			names := make([]string, 0)
			for n := range want[s.source] {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Errorf("%s line %s: not a name otlptranslator gives (%v)", s.source, s.name, names)
			continue
		}
		seen[s.name] = true
		have := map[string]bool{}
		s.labels.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				have[l.Name] = true
				if !e.allowed[l.Name] {
					t.Errorf("%s: label %s is not one the collector sets", s.labels, l.Name)
				}
			}
		})
		for l := range e.required {
			if !have[l] {
				t.Errorf("%s: label %s missing", s.labels, l)
			}
		}
	}
	for _, source := range []string{"collector", "telemetry"} {
		for name := range want[source] {
			if !seen[name] {
				t.Errorf("series.txt has no %s line for %s: the dashboards' test data must cover every metric", source, name)
			}
		}
	}
}

func TestMain(m *testing.M) {
	// Paths are relative to this module's directory.
	if _, err := os.Stat(filepath.Join("testdata", "series.txt")); err != nil {
		fmt.Fprintln(os.Stderr, "run from dashboards/promqlcheck:", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
