// Package metadata holds what mdatagen would generate from metadata.yaml (written by hand: the
// component type, its stability, and the names of its own telemetry).
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the processor's type in collector configuration files.
	Type = component.MustNewType("ai_cost")
	// ScopeName is the instrumentation scope of the processor's own telemetry.
	ScopeName = "github.com/otel-ai-cost/otel-ai-cost/collector/processor/aicostprocessor"
)

// TracesStability is the stability of the traces pipeline.
const TracesStability = component.StabilityLevelAlpha

// Names of the processor's own metrics (metadata.yaml telemetry.metrics).
const (
	MetricSpans = "otelcol_processor_ai_cost_spans"
	MetricUSD   = "otelcol_processor_ai_cost_usd"
	// MetricAnomalies counts anomaly findings by ai_cost.anomaly.type and ai_cost.anomaly.severity.
	MetricAnomalies = "otelcol_processor_ai_cost_anomalies"
)
