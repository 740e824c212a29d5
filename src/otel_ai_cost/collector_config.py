"""``otel-ai-cost collector-config``: a stock-collector (contrib ``transform`` processor, OTTL)
configuration that prices GenAI spans from the catalog, for people who cannot run otelcol-ai-cost.

OTTL can express a price table and integer arithmetic, so where it applies the cost is the same
double as the Python engine's and the Go processor's (amounts are summed as integer femto-dollars,
10^-15 USD, and divided once). What it cannot express is listed in ``LIMITATIONS`` (and in
collector/README.md); the ai_cost processor in otelcol-ai-cost does all of it.
"""
from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Optional, TextIO, Tuple

from . import _semconv as sc
from .cost import _price_chain
from .pricing import Catalog, default_catalog
from .pricing._model import ModelPrice

LIMITATIONS = (
    "model names must match a catalog id or alias exactly (no dated-snapshot fallback, no provider/ prefixes, "
    "no Bedrock regional or ARN derivation, no Azure deployment names, no Azure-to-OpenAI fallback)",
    "gen_ai.provider.name (or gen_ai.system) must be present; no provider preference when it is absent",
    "the response model is used when present, else the request model (no fallback from one to the other)",
    "base prices only: no service tiers (batch, flex, priority), no context tiers (> 200k input)",
    "text tokens only: no audio, image, video, per-image, per-request or web-search prices; no 1-hour or 12-hour "
    "cache write prices (all writes at the cache-write price); all cache reads at the text cache-read price "
    "(no ai_cost.cost.cache_read_audio)",
    "only the semconv token names (and the deprecated prompt/completion and cache_creation names); "
    "no OpenLLMetry llm.usage.* or OpenInference llm.token_count.* names, no agent/tool span detection "
    "beyond gen_ai.operation.name",
    "token counts sent as strings must be plain digits (no spaces); unreadable counts are taken as absent, silently",
    "no partial or unpriced status, no no_usage status, no telemetry of its own",
    "every span is compared with every model's condition: cost grows with the catalog's size",
)

_FEMTO = Decimal(10) ** 15
_MILLION = Decimal(1_000_000)
_INFERENCE = ("chat", "text_completion", "generate_content", "embeddings")
_LEGACY = {"xai": "x_ai", "az.ai.openai": "azure.ai.openai", "vertex_ai": "gcp.vertex_ai", "gemini": "gcp.gemini"}
# Table keys -> the price field (looked up with the engine's fallbacks).
_TABLE = (("i", "input"), ("o", "output"), ("cr", "cache_read"), ("cw", "cache_write"), ("r", "reasoning"))


def _q(text: str) -> str:
    """An OTTL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attr(name: str) -> str:
    return f"span.attributes[{_q(name)}]"


def _cache(name: str) -> str:
    return f"span.cache[{_q(name)}]"


def _femto_per_token(price_per_million: Decimal) -> Optional[int]:
    value = price_per_million * _FEMTO / _MILLION
    return int(value) if value == value.to_integral_value() else None


def _price_row(model: ModelPrice) -> Optional[Dict[str, int]]:
    """The model's base prices in femto-USD per token, with the engine's fallbacks; None if the
    entry has no input price or a price OTTL integers cannot hold exactly."""
    _, prices = _price_chain(model, None, None)
    row: Dict[str, int] = {}
    for key, field in _TABLE:
        value = prices.get(field)
        if value is None:
            continue
        femto = _femto_per_token(value)
        if femto is None:
            return None
        row[key] = femto
    return row if "i" in row else None


def _counts() -> List[str]:
    """Statements reading the token counts into the cache as integers (0 when absent)."""
    names = {
        "in": (sc.GEN_AI_USAGE_PROMPT_TOKENS, sc.GEN_AI_USAGE_INPUT_TOKENS),
        "out": (sc.GEN_AI_USAGE_COMPLETION_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS),
        "cr": (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,),
        "cw": (sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
        "r": (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,),
    }
    out: List[str] = []
    for key, attrs in names.items():
        out.append(f"set({_cache(key)}, 0)")
        for name in attrs:  # later wins: the current name last
            out.append(f"set({_cache(key)}, Int({_attr(name)})) where {_attr(name)} != nil")
        out.append(f"set({_cache(key)}, 0) where {_cache(key)} < 0")
    return out


def _entries(catalog: Catalog, providers: Optional[Iterable[str]]) -> List[Tuple[ModelPrice, Dict[str, int]]]:
    wanted = set(providers) if providers else None
    out = []
    for model in catalog.entries():
        if wanted is not None and model.provider not in wanted:
            continue
        row = _price_row(model.at())  # dated prices: the ones in force today (OTTL has no day rule)
        if row is not None:
            out.append((model, row))
    return out


def generate(catalog: Optional[Catalog] = None, providers: Optional[Iterable[str]] = None,
             name: str = "transform/ai_cost") -> Dict[str, Any]:
    """The ``processors:`` entry (a dict for YAML) pricing spans with the catalog."""
    catalog = catalog or default_catalog()
    p = _cache("p")
    statements: List[str] = [
        f"set({_cache('prov')}, {_attr(sc.GEN_AI_PROVIDER_NAME)})",
        f"set({_cache('prov')}, {_attr(sc.GEN_AI_SYSTEM)}) where {_cache('prov')} == nil",
    ]
    for old, new in _LEGACY.items():
        statements.append(f"set({_cache('prov')}, {_q(new)}) where {_cache('prov')} == {_q(old)}")
    statements += [
        f"set({_cache('m')}, {_attr(sc.GEN_AI_REQUEST_MODEL)})",
        f"set({_cache('m')}, {_attr(sc.GEN_AI_RESPONSE_MODEL)}) where {_attr(sc.GEN_AI_RESPONSE_MODEL)} != nil",
    ]
    statements += _counts()
    # The price table: one statement per catalog entry, matching its id and aliases.
    for model, row in _entries(catalog, providers):
        names = " or ".join(f"{_cache('m')} == {_q(n)}" for n in (model.id, *model.aliases))
        table = ", ".join([f'"id": {_q(model.id)}'] + [f"{_q(k)}: {v}" for k, v in row.items()])
        statements.append(f"set({p}, {{{table}}}) where {_cache('prov')} == {_q(model.provider)} and ({names})")
    priced = f"{p} != nil"
    # Derived counts, clamped at 0 as the engine does.
    statements += [
        f"set({_cache('ti')}, {_cache('in')} - {_cache('cr')} - {_cache('cw')}) where {priced}",
        f"set({_cache('ti')}, 0) where {priced} and {_cache('ti')} < 0",
        f"set({_cache('to')}, {_cache('out')} - {_cache('r')}) where {priced}",
        f"set({_cache('to')}, 0) where {priced} and {_cache('to')} < 0",
        f"set({_cache('tot')}, 0) where {priced}",
    ]
    components = (
        ("ti", "i", sc.AI_COST_COST_INPUT),
        ("cr", "cr", sc.AI_COST_COST_CACHE_READ),
        ("cw", "cw", sc.AI_COST_COST_CACHE_WRITE),
        ("to", "o", sc.AI_COST_COST_OUTPUT),
        ("r", "r", sc.AI_COST_COST_REASONING),
    )
    for count, price, attribute in components:
        when = f"{priced} and {_cache(count)} > 0 and {p}[{_q(price)}] != nil"
        femto = f"{_cache(count)} * {p}[{_q(price)}]"
        statements += [
            f"set({_attr(attribute)}, Double({femto}) / 1000000000000000.0) where {when}",
            f"set({_cache('tot')}, {_cache('tot')} + {femto}) where {when}",
        ]
    statements += [
        f"set({_attr(sc.GEN_AI_USAGE_COST_AMOUNT)}, Double({_cache('tot')}) / 1000000000000000.0) where {priced}",
        f"set({_attr(sc.GEN_AI_USAGE_COST_CURRENCY)}, \"USD\") where {priced}",
        f"set({_attr(sc.GEN_AI_USAGE_COST_SOURCE)}, \"local\") where {priced}",
        f"set({_attr(sc.AI_COST_PRICING_STATUS)}, \"priced\") where {priced}",
        f"set({_attr(sc.AI_COST_PRICING_MODEL)}, {p}[\"id\"]) where {priced}",
        f"set({_attr(sc.AI_COST_PRICING_STATUS)}, \"unknown_model\") where {p} == nil",
        f"set({_attr(sc.AI_COST_PRICING_CATALOG_VERSION)}, {_q(catalog.version)})",
    ]
    inference = " or ".join(f"{_attr(sc.GEN_AI_OPERATION_NAME)} == {_q(op)}" for op in _INFERENCE)
    usage = " or ".join(f"{_attr(n)} != nil" for n in (
        sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_PROMPT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS))
    # A span marked priced_on belongs to a call priced on another span (the SDK's own tracing).
    condition = (f"({inference}) and {_attr(sc.GEN_AI_USAGE_COST_AMOUNT)} == nil"
                 f" and {_attr(sc.AI_COST_PRICING_PRICED_ON)} == nil and ({usage})")
    return {name: {"error_mode": "ignore", "trace_statements": [
        {"context": "span", "conditions": [condition], "statements": statements}]}}


def render(catalog: Optional[Catalog] = None, providers: Optional[Iterable[str]] = None) -> str:
    """The generated configuration as YAML text (processors section plus a commented pipeline)."""
    import yaml

    catalog = catalog or default_catalog()
    processors = generate(catalog, providers)
    statements = processors["transform/ai_cost"]["trace_statements"][0]["statements"]
    header = [
        "# Generated by `otel-ai-cost collector-config` from the otel-ai-cost pricing catalog",
        f"# (catalog {catalog.version}, {len(statements)} OTTL statements). Do not edit: regenerate.",
        "# For the stock contrib collector (transform processor). Add it to your traces pipeline:",
        "#   service: {pipelines: {traces: {processors: [transform/ai_cost, batch]}}}",
        "# What it cannot do (the ai_cost processor of otelcol-ai-cost does):",
    ] + [f"#  - {line}" for line in LIMITATIONS]
    body = yaml.safe_dump({"processors": processors}, sort_keys=False, width=100000, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def _run(args: argparse.Namespace) -> int:
    catalog = Catalog.load(*args.pricing_file) if args.pricing_file else default_catalog()
    text = render(catalog, args.provider or None)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``collector-config`` command to the CLI's subparsers."""
    cmd = subparsers.add_parser(
        "collector-config",
        help="generate a stock-collector transform processor (OTTL) config that prices GenAI spans",
        description="Print a contrib `transform` processor configuration (OTTL) that adds gen_ai.usage.cost.* "
        "to GenAI spans from the pricing catalog, for collectors that cannot include the ai_cost processor. "
        "Limitations: " + "; ".join(LIMITATIONS) + ".",
    )
    cmd.add_argument("--provider", action="append", metavar="NAME",
                     help="only this provider's models (repeatable), e.g. --provider openai; fewer models, faster OTTL")
    cmd.add_argument("--pricing-file", action="append", default=[], metavar="FILE",
                     help="a pricing file applied over the bundled catalog (repeatable)")
    cmd.add_argument("-o", "--output", help="write the configuration here (default: standard output)")
    cmd.set_defaults(func=_run)


def write(out: TextIO) -> None:  # pragma: no cover - convenience for scripts
    out.write(render())
