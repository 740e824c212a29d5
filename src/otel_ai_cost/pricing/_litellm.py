"""Import a LiteLLM ``model_prices_and_context_window.json`` file into our catalog format.

LiteLLM prices are floats in USD per token; ours are decimal strings in USD per 1M tokens. A float
is converted through its shortest repr (``2.5e-06`` -> ``Decimal("0.0000025")``) and scaled as a
Decimal, so no binary rounding leaks into the catalog.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import CatalogError
from ._catalog import AZURE, BEDROCK, SCHEMA_VERSION, SERVICE_TIERS, format_price, validate_document
from ._model import PRICE_FIELDS

# LiteLLM price key (without tier suffixes) -> our price field.
PRICE_KEYS: Mapping[str, str] = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_read_input_audio_token_cost": "cache_read_audio",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "cache_creation_input_token_cost_above_12hr": "cache_write_12h",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_audio_token": "audio_input",
    "output_cost_per_audio_token": "audio_output",
    "input_cost_per_image_token": "image_input",
    "output_cost_per_image_token": "image_output",
    "input_cost_per_video_token": "video_input",
    "output_cost_per_image": "per_image",
    "input_cost_per_request": "per_request",
}
PER_UNIT_FIELDS = frozenset({"per_image", "per_request"})  # USD per unit, not per token
TIER_SUFFIXES: Mapping[str, str] = {"batches": "batch", "flex": "flex", "priority": "priority"}

# Keys that describe a model rather than price it: read (mode, max tokens, source) or not needed.
INFO_KEYS = frozenset({
    "litellm_provider", "mode", "max_input_tokens", "max_output_tokens", "max_tokens", "source",
    "deprecation_date", "metadata", "comment", "rpm", "tpm", "supported_endpoints",
    "supported_modalities", "supported_output_modalities", "supported_regions",
    "supported_audio_formats", "output_vector_size", "prompt_cache_min_tokens", "reasoning_contexts",
    "reasoning_effort_levels", "reasoning_modes", "default_reasoning_effort", "thinking_always_on",
    "token_count_framing", "token_count_model", "token_count_tokenizer", "use_openai_responses_path",
    "uses_embed_content", "provider_specific_entry", "bedrock_converse_supports_strict_tools",
    "bedrock_output_config_effort_ceiling", "gemini_audio_only_live", "gemini_native_audio",
    "vertex_ai_audio_api", "audio_transcription_config", "rules", "web_search_billing_unit",
    "search_free_requests",
})

_IMAGE_MODES = frozenset({"image_generation", "image_edit"})
_PRICE_KEY = re.compile(r"^(?P<base>.+?)(?:_above_(?P<k>\d+)k_tokens)?(?:_(?P<tier>batches|flex|priority))?$")

# LiteLLM provider -> (our provider, prefixes LiteLLM puts before the model id for it).
PROVIDERS: Mapping[str, Tuple[str, Tuple[str, ...]]] = {
    "openai": ("openai", ("openai/",)),
    "text-completion-openai": ("openai", ("openai/",)),
    "azure": (AZURE, ("azure/",)),
    "azure_text": (AZURE, ("azure/",)),
    "anthropic": ("anthropic", ("anthropic/",)),
    "gemini": ("gcp.gemini", ("gemini/",)),
    "bedrock": (BEDROCK, ("bedrock/",)),
    "bedrock_converse": (BEDROCK, ("bedrock/converse/", "bedrock/")),
    "bedrock_mantle": (BEDROCK, ("bedrock_mantle/",)),
    "mistral": ("mistral_ai", ("mistral/",)),
    "codestral": ("mistral_ai", ("codestral/",)),
    "text-completion-codestral": ("mistral_ai", ("text-completion-codestral/",)),
    "cohere": ("cohere", ("cohere/",)),
    "cohere_chat": ("cohere", ("cohere/", "cohere_chat/")),
    "groq": ("groq", ("groq/",)),
    "deepseek": ("deepseek", ("deepseek/",)),
    "xai": ("x_ai", ("xai/",)),
}
_VERTEX_PREFIXES = ("vertex_ai/",)


def our_provider(litellm_provider: Any) -> Optional[Tuple[str, Tuple[str, ...]]]:
    if not isinstance(litellm_provider, str):
        return None
    if litellm_provider == "vertex_ai" or litellm_provider.startswith("vertex_ai-"):
        return ("gcp.vertex_ai", _VERTEX_PREFIXES)
    return PROVIDERS.get(litellm_provider)


@dataclass
class ImportResult:
    document: Dict[str, Any]                                        # our catalog format, validated
    models_per_provider: Counter[str] = field(default_factory=Counter)   # our provider -> models written
    source_entries: Counter[str] = field(default_factory=Counter)        # our provider -> LiteLLM entries read
    unknown_keys: Counter[str] = field(default_factory=Counter)          # LiteLLM key not mapped -> entries using it
    no_price: List[str] = field(default_factory=list)               # entries with no price we can represent
    merged: List[str] = field(default_factory=list)                 # entries folded into an identical one
    conflicts: List[str] = field(default_factory=list)              # same (provider, id), other prices: dropped
    other_providers: int = 0                                        # entries of providers we do not map

    def summary(self) -> str:
        lines = [f"{sum(self.models_per_provider.values())} models from {sum(self.source_entries.values())} entries"]
        for provider in sorted(self.models_per_provider):
            models, entries = self.models_per_provider[provider], self.source_entries[provider]
            lines.append(f"  {provider}: {models} models ({entries} entries)")
        lines.append(f"skipped: {len(self.no_price)} without a per-token/per-image/per-request price, "
                     f"{len(self.merged)} duplicates merged, {len(self.conflicts)} conflicting duplicates, "
                     f"{self.other_providers} entries of other providers")
        if self.unknown_keys:
            lines.append(f"unknown keys ({len(self.unknown_keys)}):")
            for key, count in sorted(self.unknown_keys.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {key}: {count}")
        return "\n".join(lines)


def per_million(value: float) -> str:
    """USD per token (float) -> USD per 1M tokens (decimal string), exactly: 2.5e-06 -> "2.5"."""
    return format_price(Decimal(repr(value)) * 1_000_000)


def per_unit(value: float) -> str:
    return format_price(Decimal(repr(value)))


def _check_number(value: Any, file: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogError(f"{file}: {key}: price must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise CatalogError(f"{file}: {key}: price must be a finite non-negative number, got {value!r}")
    return value


def _entry_to_model(name: str, entry: Mapping[str, Any], provider: str, prefixes: Tuple[str, ...],
                    file: str, unknown: Counter[str], source_label: str, date: str) -> Optional[Dict[str, Any]]:
    model_id = name
    for prefix in prefixes:
        if model_id.startswith(prefix):
            model_id = model_id[len(prefix):]
            break
    base: Dict[str, str] = {}
    tiers: Dict[str, Dict[str, str]] = {}
    context: Dict[int, Dict[str, Any]] = {}
    has_cache_read = "cache_read_input_token_cost" in entry
    generates_images = entry.get("mode") in _IMAGE_MODES and "output_cost_per_image" not in entry
    for key, value in entry.items():
        if key in INFO_KEYS or key.startswith("supports_"):
            continue
        if key == "input_cost_per_token_cache_hit" and has_cache_read:
            continue  # DeepSeek's older spelling of cache_read_input_token_cost
        match = _PRICE_KEY.match(key)
        base_key = match.group("base") if match else key
        if base_key == "input_cost_per_token_cache_hit":
            base_key = "cache_read_input_token_cost"
        elif base_key == "input_cost_per_image" and generates_images:
            base_key = "output_cost_per_image"  # LiteLLM prices generated images (gpt-image sizes) under this name
        our_field = PRICE_KEYS.get(base_key)
        if our_field is None or match is None:
            unknown[key] += 1
            continue
        number = _check_number(value, file, f"[{name!r}].{key}")
        text = per_unit(number) if our_field in PER_UNIT_FIELDS else per_million(number)
        tier = TIER_SUFFIXES.get(match.group("tier") or "")
        if match.group("k"):
            slot = context.setdefault(int(match.group("k")) * 1000, {"prices": {}, "service_tiers": {}})
            (slot["service_tiers"].setdefault(tier, {}) if tier else slot["prices"])[our_field] = text
        else:
            (tiers.setdefault(tier, {}) if tier else base)[our_field] = text
    if not base:
        return None
    model: Dict[str, Any] = {"id": model_id, "provider": provider, "mode": entry.get("mode") or "chat",
                             "prices": _ordered(base)}
    if tiers:
        model["service_tiers"] = {t: _ordered(tiers[t]) for t in SERVICE_TIERS if t in tiers}
    ctx = []
    for threshold in sorted(context):
        slot = context[threshold]
        if not slot["prices"]:
            # A tier that only lists service-tier prices (LiteLLM does this) still needs its own prices: skip it.
            unknown[f"(context tier above {threshold} tokens without standard prices)"] += 1
            continue
        item: Dict[str, Any] = {"above_input_tokens": threshold, "prices": _ordered(slot["prices"])}
        if slot["service_tiers"]:
            tiered = slot["service_tiers"]
            item["service_tiers"] = {t: _ordered(tiered[t]) for t in SERVICE_TIERS if t in tiered}
        ctx.append(item)
    if ctx:
        model["context_tiers"] = ctx
    for key in ("max_input_tokens", "max_output_tokens"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CatalogError(f"{file}: [{name!r}].{key}: must be a non-negative integer, got {value!r}")
        model[key] = value
    source = entry.get("source")
    model["source"] = source if isinstance(source, str) and source.startswith("https://") else source_label
    model["effective_date"] = date
    return model


def _ordered(prices: Mapping[str, str]) -> Dict[str, str]:
    return {name: prices[name] for name in PRICE_FIELDS if name in prices}


def _same_prices(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = ("prices", "service_tiers", "context_tiers")
    return all(a.get(k) == b.get(k) for k in keys)


def import_litellm(path: "os.PathLike[str] | str", *, source_label: str, effective_date: str,
                   catalog_version: Optional[str] = None) -> ImportResult:
    """Read a LiteLLM price file and return it in our catalog format (validated against the schema)."""
    file = os.fspath(path)
    try:
        raw = json.loads(Path(file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{file}: (file): cannot read LiteLLM file: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{file}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{file}: (top level): a LiteLLM price file is a JSON object of model name -> entry")
    if "schema_version" in raw and isinstance(raw.get("models"), list):
        raise CatalogError(f"{file}: (top level): not a LiteLLM price file: this is already an otel-ai-cost catalog "
                           "(schema_version, models); check it with `otel-ai-cost prices validate` instead")
    entries = [e for k, e in raw.items() if k != "sample_spec"]
    if entries and all(isinstance(e, dict) and "litellm_provider" not in e for e in entries):
        raise CatalogError(f"{file}: (top level): not a LiteLLM price file: no entry has a litellm_provider key "
                           "(expected LiteLLM's model_prices_and_context_window.json: model name -> "
                           '{"litellm_provider": ..., "input_cost_per_token": ...})')

    result = ImportResult(document={})
    chosen: Dict[Tuple[str, str], Tuple[str, Dict[str, Any]]] = {}
    for name in sorted(raw):
        entry = raw[name]
        if name == "sample_spec":
            continue  # LiteLLM's documentation entry
        if not isinstance(entry, dict):
            raise CatalogError(f"{file}: [{name!r}]: entry must be an object, got {type(entry).__name__}")
        mapped = our_provider(entry.get("litellm_provider"))
        if mapped is None:
            result.other_providers += 1
            continue
        provider, prefixes = mapped
        result.source_entries[provider] += 1
        model = _entry_to_model(name, entry, provider, prefixes, file, result.unknown_keys, source_label,
                                effective_date)
        if model is None:
            result.no_price.append(name)
            continue
        key = (provider, model["id"])
        if key in chosen:
            first_name, first = chosen[key]
            # Keep the first entry in name order (deterministic), and report the other.
            (result.merged if _same_prices(first, model) else result.conflicts).append(f"{name} (kept {first_name})")
            continue
        chosen[key] = (name, model)

    # Bedrock region-path entries ("bedrock/us-east-1/anthropic.claude-...") priced like the plain id add nothing.
    for (provider, model_id), (name, model) in list(chosen.items()):
        if provider == BEDROCK and "/" in model_id:
            plain = chosen.get((provider, model_id.rsplit("/", 1)[1]))
            if plain is not None and _same_prices(plain[1], model):
                result.merged.append(f"{name} (kept {plain[0]})")
                del chosen[(provider, model_id)]

    models = [chosen[key][1] for key in sorted(chosen)]
    for model in models:
        result.models_per_provider[model["provider"]] += 1
    document: Dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if catalog_version:
        document["catalog_version"] = catalog_version
    document["currency"] = "USD"
    document["imported_from"] = source_label
    document["models"] = models
    validate_document(document, file)
    result.document = document
    return result
