// The TraceQL of dashboards/otel-ai-cost-tempo.json (and of collector/README.md's Tempo section)
// parsed by @grafana/lezer-traceql, the grammar Grafana's Tempo query editor parses TraceQL with
// (Apache-2.0). Tempo itself (AGPL) is not used: this checks the syntax, not what Tempo returns.
// Run: npm ci && node --test   (scripts/test-collector does).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { parser } from "@grafana/lezer-traceql";

const root = new URL("../../", import.meta.url);
const dashboard = JSON.parse(fs.readFileSync(new URL("dashboards/otel-ai-cost-tempo.json", root), "utf8"));

// What Grafana puts in place of the dashboard's variables (their default values).
const variables = Object.fromEntries(
  dashboard.templating.list.filter((v) => v.type === "textbox").map((v) => [v.name, v.query]),
);

function substitute(query) {
  return query.replace(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?/g, (_, name) => {
    assert.ok(name in variables, `$${name} is not a textbox variable of the dashboard: ${query}`);
    return variables[name];
  });
}

/** The positions of the parse errors of a query, [] when it parses. */
function errors(query) {
  const found = [];
  parser.parse(query).iterate({
    enter: (node) => {
      if (node.type.isError) found.push(`${node.from}: ${JSON.stringify(query.slice(node.from, node.from + 20))}`);
    },
  });
  return found;
}

const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, query: t.query })));

test("the dashboard has its queries", () => {
  assert.ok(queries.length >= 12, `${queries.length} queries`);
  assert.deepEqual(Object.keys(variables).sort(), ["min_call_cost", "min_trace_cost", "service"]);
});

for (const { title, query } of queries) {
  test(`parses: ${title}`, () => {
    const text = substitute(query);
    assert.deepEqual(errors(text), [], text);
  });
}

test("the grammar rejects broken TraceQL (so that a pass means something)", () => {
  for (const broken of [
    "{ span.gen_ai.usage.cost.amount > }",
    "{ span.ai_cost.budget.limit > 0 } | max_over_time(span.ai_cost.budget.spent) by (span.ai_cost.budget.id",
    "{ span.gen_ai.usage.cost.amount > 0 } | total_cost_over_time(span.gen_ai.usage.cost.amount)",
    '{ span.ai_cost.pricing.status = "unknown_model" | select(span.gen_ai.request.model)',
  ]) {
    assert.notDeepEqual(errors(broken), [], broken);
  }
});

test("the TraceQL examples of collector/README.md parse", () => {
  const readme = fs.readFileSync(new URL("collector/README.md", root), "utf8");
  const section = readme.slice(readme.indexOf("**Tempo (TraceQL)**"), readme.indexOf("**Datadog**"));
  const examples = [...section.matchAll(/^(\{.*?)\s*(?:#.*)?$/gm)].map((m) => m[1].trim());
  examples.push(...[...section.matchAll(/`(\{[^`]*)`/g)].map((m) => m[1]));
  assert.ok(examples.length >= 6, JSON.stringify(examples));
  for (const example of examples) {
    assert.deepEqual(errors(example), [], example);
  }
});
