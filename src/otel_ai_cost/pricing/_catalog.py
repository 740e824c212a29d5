"""Read, validate and query pricing catalog files (see ``data/catalog.schema.json``)."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import CatalogError, ConfigError
from ._history import date_errors, price_periods
from ._model import PRICE_FIELDS, ContextTier, ModelPrice, PriceSet

PathLike = Union[str, "os.PathLike[str]"]

SCHEMA_VERSION = 1
SERVICE_TIERS = ("batch", "flex", "priority")
AZURE = "azure.ai.openai"
BEDROCK = "aws.bedrock"
ENV_PRICING_FILES = "OTEL_AI_COST_PRICING_FILES"
ENV_AZURE_DEPLOYMENTS = "OTEL_AI_COST_AZURE_DEPLOYMENTS"

# When no provider is given, a model id listed by several providers resolves to the first of
# these: the model maker's own API before the clouds that resell it.
PROVIDER_PREFERENCE = (
    "openai", "anthropic", "gcp.gemini", "mistral_ai", "cohere", "deepseek", "x_ai",
    "groq", "gcp.vertex_ai", "aws.bedrock", "azure.ai.openai",
)

# `provider/model` prefixes users and proxies (LiteLLM, gateways) put in front of a model name.
MODEL_PREFIXES: Mapping[str, str] = {
    "openai": "openai", "azure": AZURE, "anthropic": "anthropic", "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai", "bedrock": BEDROCK, "mistral": "mistral_ai", "cohere": "cohere",
    "groq": "groq", "deepseek": "deepseek", "xai": "x_ai",
}

# Provider names that mean one of ours (LiteLLM spellings, and semconv's generic Google value).
_PROVIDER_GROUPS: Mapping[str, Tuple[str, ...]] = {
    "azure": (AZURE,), "bedrock": (BEDROCK,), "gemini": ("gcp.gemini",),
    "vertex_ai": ("gcp.vertex_ai",), "mistral": ("mistral_ai",), "xai": ("x_ai",),
    "gcp.gen_ai": ("gcp.gemini", "gcp.vertex_ai"),
}

_BEDROCK_REGION_PREFIX = re.compile(r"^(?:us|us-gov|eu|apac|au|jp|ca|global)\.(.+\..+)$")
_SNAPSHOT_SUFFIX = re.compile(r"^(.+?)(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
_MEMO_SIZE = 4096


# ---------------------------------------------------------------------------------------------
# Reading and validating files


@functools.lru_cache(maxsize=1)
def _schema_validator() -> Any:
    try:
        import jsonschema
    except ImportError as exc:  # an extra: the bundled catalog is read without it
        raise CatalogError(
            "validating a pricing file needs jsonschema: pip install 'otel-ai-cost[jsonschema]'"
        ) from exc

    schema = json.loads(resources.files(__package__).joinpath("data/catalog.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _key(path: Iterable[Any]) -> str:
    """JSON path in the form users can find in their file: ``models[12].prices.input``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _error(file: str, key: str, reason: str) -> CatalogError:
    return CatalogError(f"{file}: {key}: {reason}")


def _model_hint(doc: Any, path: Sequence[Any]) -> str:
    if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
        try:
            entry = doc["models"][path[1]]
            if entry.get("id") is None:
                return ""
            return f" (model {entry.get('provider')}/{entry.get('id')})"
        except (AttributeError, IndexError, KeyError, TypeError):
            return ""
    return ""


def _price_reason(value: Any) -> str:
    """Why a price value is not a price (the schema's anyOf error says nothing useful)."""
    if isinstance(value, bool):
        return f"price must be a non-negative number or decimal string such as 2.5 or \"2.5\", not {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"price must be non-negative, got {value!r}"
    if isinstance(value, str):
        return f"price must be a non-negative decimal string such as \"2.5\" (or a JSON number), got {value!r}"
    return f"price must be a non-negative number or decimal string such as 2.5 or \"2.5\", got {value!r}"


def _path_order(path: Sequence[Any]) -> Tuple[Tuple[int, Any], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in path)


def _schema_errors(doc: Any, file: str) -> List[Tuple[Tuple[Tuple[int, Any], ...], CatalogError]]:
    found = []
    for error in _schema_validator().iter_errors(doc):
        path = list(error.absolute_path)
        if bool(path) and path[-1] in PRICE_FIELDS and error.validator == "anyOf":
            reason = _price_reason(error.instance)
        else:
            reason = error.message
        found.append((_path_order(path), _error(file, _key(path), reason + _model_hint(doc, path))))
    return found


def _price_sets(entry: Mapping[str, Any], i: int) -> Iterable[Tuple[List[Any], Any]]:
    """(JSON path, prices object) of every price set in model entry ``i``, whatever its shape."""
    for base, period in price_periods(entry, i):
        yield base + ["prices"], period.get("prices")
        tiers = period.get("service_tiers")
        if isinstance(tiers, dict):
            for tier, prices in tiers.items():
                yield base + ["service_tiers", tier], prices
        contexts = period.get("context_tiers")
        for j, ctx in enumerate(contexts if isinstance(contexts, list) else ()):
            if isinstance(ctx, dict):
                yield base + ["context_tiers", j, "prices"], ctx.get("prices")
                tiers = ctx.get("service_tiers")
                if isinstance(tiers, dict):
                    for tier, prices in tiers.items():
                        yield base + ["context_tiers", j, "service_tiers", tier], prices


def _semantic_errors(doc: Any, file: str) -> List[Tuple[Tuple[Tuple[int, Any], ...], CatalogError]]:
    """What the schema cannot say: unique ids and aliases, ascending tiers, no NaN or Infinity.

    Runs on documents that may also break the schema, so every access checks the shape first.
    """
    found = []

    def add(path: Sequence[Any], key: str, reason: str) -> None:
        found.append((_path_order(path), _error(file, key, reason)))

    models = doc.get("models") if isinstance(doc, dict) else None
    seen: Dict[Tuple[str, str], str] = {}
    for i, entry in enumerate(models if isinstance(models, list) else ()):
        if not isinstance(entry, dict):
            continue
        where = f"models[{i}]"
        provider = entry.get("provider")
        aliases = entry.get("aliases")
        names = [(entry.get("id"), f"{where}.id", ["models", i, "id"])] + [
            (alias, f"{where}.aliases[{j}]", ["models", i, "aliases", j])
            for j, alias in enumerate(aliases if isinstance(aliases, list) else ())
        ]
        for name, key, path in names:
            if not isinstance(name, str) or not isinstance(provider, str):
                continue
            first = seen.get((provider, name))
            if first is not None:
                add(path, key, f"{name!r} is already used by {first} in provider {provider!r}; "
                               "ids and aliases must be unique within a provider")
            else:
                seen[(provider, name)] = where
        for base, period in price_periods(entry, i):
            contexts = period.get("context_tiers")
            previous = 0
            for j, tier in enumerate(contexts if isinstance(contexts, list) else ()):
                above = tier.get("above_input_tokens") if isinstance(tier, dict) else None
                if not isinstance(above, int) or isinstance(above, bool):
                    continue
                if above <= previous:
                    path = base + ["context_tiers", j, "above_input_tokens"]
                    add(path, _key(path), f"thresholds must be strictly ascending, got {above} after {previous}")
                previous = above
        for path, reason in date_errors(entry, i):
            add(path, _key(path), reason)
        for path, prices in _price_sets(entry, i):
            if not isinstance(prices, dict):
                continue
            for name, value in prices.items():
                if isinstance(value, float) and not math.isfinite(value):
                    # Python's json module reads NaN and Infinity; the schema's minimum lets NaN through.
                    add(path + [name], _key(path + [name]),
                        f"price must be a finite non-negative number, got {value!r}"
                        f" (model {provider}/{entry.get('id')})")
    return found


def document_errors(doc: Any, file: str) -> List[CatalogError]:
    """Every problem in a decoded catalog document, in document order; each names file, key and reason."""
    found = _schema_errors(doc, file) + _semantic_errors(doc, file)
    found.sort(key=lambda item: item[0])  # stable: schema errors before semantic ones at the same key
    return [error for _, error in found]


def validate_document(doc: Any, file: str) -> None:
    """Raise CatalogError naming file, key and reason if ``doc`` is not a valid catalog.

    Raises for the first problem in document order (``document_errors`` lists them all).
    """
    errors = document_errors(doc, file)
    if errors:
        raise errors[0]


# Many entries share a price ("0.15", "0.6", ...): one Decimal per distinct value, and one PriceSet
# per distinct set of prices (they are immutable), keep the loaded catalog small.
_DECIMALS: Dict[str, Decimal] = {}
_PRICE_SETS: Dict[Tuple[Tuple[str, str], ...], PriceSet] = {}


def _price_text(value: Union[str, int, float]) -> str:
    """A price as written in the file: "0.15" -> "0.15", 0.15 -> "0.15" (repr, not the binary float), 2 -> "2"."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as this float: what the file said
    return str(value)


def _decimal(text: str) -> Decimal:
    number = _DECIMALS.get(text)
    if number is None:
        number = Decimal(text)
        if number == 0:
            number = Decimal(0)  # -0.0 is a valid JSON number; a price of "-0" would read oddly
        number = _DECIMALS[text] = number
    return number


def _price_set(raw: Mapping[str, Union[str, int, float]]) -> PriceSet:
    # validate_document already guarantees a non-negative finite decimal string or number.
    texts = {name: _price_text(value) for name, value in raw.items()}
    key = tuple(sorted(texts.items()))
    prices = _PRICE_SETS.get(key)
    if prices is None:
        prices = _PRICE_SETS[key] = PriceSet(**{name: _decimal(text) for name, text in texts.items()})
    return prices


def _tiers(raw: Mapping[str, Mapping[str, str]]) -> Dict[str, PriceSet]:
    return {tier: _price_set(prices) for tier, prices in raw.items()}


def model_from_dict(entry: Mapping[str, Any]) -> ModelPrice:
    model = _period_from_dict(entry, entry)
    history = entry.get("price_history")
    if not history:
        return model
    periods = tuple(_period_from_dict(entry, period) for period in history)
    return dataclasses.replace(model, price_history=periods)


def _period_from_dict(entry: Mapping[str, Any], period: Mapping[str, Any]) -> ModelPrice:
    """One price period of a model entry (the entry itself, or one of its price_history items)."""
    return ModelPrice(
        id=entry["id"],
        provider=entry["provider"],
        mode=entry.get("mode", "chat"),
        prices=_price_set(period["prices"]),
        service_tiers=_tiers(period.get("service_tiers", {})),
        context_tiers=tuple(
            ContextTier(t["above_input_tokens"], _price_set(t["prices"]), _tiers(t.get("service_tiers", {})))
            for t in period.get("context_tiers", ())
        ),
        aliases=tuple(entry.get("aliases", ())),
        max_input_tokens=entry.get("max_input_tokens"),
        max_output_tokens=entry.get("max_output_tokens"),
        source=period.get("source", ""),
        effective_date=entry.get("effective_date", ""),
        effective_from=period.get("effective_from", ""),
    )


def format_price(value: Decimal) -> str:
    """Decimal -> the catalog's string form: plain notation, no trailing zeros ("2.5", "10")."""
    return format(value.normalize(), "f")


def _prices_to_dict(prices: PriceSet) -> Dict[str, str]:
    return {name: format_price(getattr(prices, name)) for name in PRICE_FIELDS if getattr(prices, name) is not None}


def _service_tiers_to_dict(tiers: Mapping[str, PriceSet]) -> Dict[str, Dict[str, str]]:
    """Service tier -> prices, in the catalog's tier order."""
    return {t: _prices_to_dict(tiers[t]) for t in SERVICE_TIERS if t in tiers}


def _period_prices_to_dict(model: ModelPrice, out: Dict[str, Any]) -> Dict[str, Any]:
    out["prices"] = _prices_to_dict(model.prices)
    if model.service_tiers:
        out["service_tiers"] = _service_tiers_to_dict(model.service_tiers)
    if model.context_tiers:
        out["context_tiers"] = []
        for tier in model.context_tiers:
            item: Dict[str, Any] = {"above_input_tokens": tier.above_input_tokens,
                                    "prices": _prices_to_dict(tier.prices)}
            if tier.service_tiers:
                item["service_tiers"] = _service_tiers_to_dict(tier.service_tiers)
            out["context_tiers"].append(item)
    return out


def model_to_dict(model: ModelPrice) -> Dict[str, Any]:
    """ModelPrice -> catalog JSON entry, keys in schema order, empty optional keys left out."""
    out: Dict[str, Any] = {"id": model.id, "provider": model.provider, "mode": model.mode}
    if model.aliases:
        out["aliases"] = list(model.aliases)
    _period_prices_to_dict(model, out)
    for name in ("max_input_tokens", "max_output_tokens"):
        if getattr(model, name) is not None:
            out[name] = getattr(model, name)
    if model.source:
        out["source"] = model.source
    if model.effective_date:
        out["effective_date"] = model.effective_date
    if model.effective_from:
        out["effective_from"] = model.effective_from
    if model.price_history:
        out["price_history"] = []
        for period in model.price_history:
            item: Dict[str, Any] = {"effective_from": period.effective_from}
            _period_prices_to_dict(period, item)
            if period.source:
                item["source"] = period.source
            out["price_history"].append(item)
    return out


def parse_document(doc: Any, file: str) -> Tuple[Dict[str, Any], List[ModelPrice]]:
    """Validate a decoded catalog document; return (top-level metadata, models)."""
    validate_document(doc, file)
    meta = {k: v for k, v in doc.items() if k != "models"}
    return meta, [model_from_dict(entry) for entry in doc["models"]]


def read_catalog_file(path: PathLike) -> Tuple[Dict[str, Any], List[ModelPrice]]:
    """Read, validate and parse a pricing file; CatalogError for the first problem found."""
    file = os.fspath(path)
    return parse_document(read_document(file), file)


def read_document(path: PathLike) -> Any:
    """The decoded JSON of a pricing file, not yet validated; CatalogError if unreadable or not JSON."""
    file = os.fspath(path)
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{file}: (file): cannot read pricing file: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{file}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from exc


def dump_document(doc: Mapping[str, Any]) -> str:
    """Stable text form of a catalog: one model per block, so diffs review line by line."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _bundled_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("data/catalog.json")))


@functools.lru_cache(maxsize=1)
def _bundled() -> Tuple[Dict[str, Any], Tuple[ModelPrice, ...]]:
    # Parsed once per process; entries are immutable. The bundled file ships inside the package and
    # the test suite validates it (schema + the semantic checks of validate_document), so it is not
    # run through jsonschema here: that took ~450 ms. User-supplied files keep full validation.
    doc = json.loads(_bundled_path().read_text(encoding="utf-8"))
    meta = {k: v for k, v in doc.items() if k != "models"}
    return meta, tuple(model_from_dict(entry) for entry in doc["models"])


# ---------------------------------------------------------------------------------------------
# The catalog


class Catalog:
    """Model prices indexed for resolution. Built with ``Catalog.load`` or ``default_catalog()``."""

    def __init__(
        self, models: Iterable[ModelPrice], version: str = "", azure_deployments: Optional[Mapping[str, str]] = None
    ) -> None:
        self._version = version
        self._models: Dict[Tuple[str, str], ModelPrice] = {}
        for model in models:
            self._models[(model.provider, model.id)] = model  # later entries override earlier ones
        self._ids: Dict[str, Dict[str, ModelPrice]] = {}
        self._aliases: Dict[str, Dict[str, ModelPrice]] = {}
        for model in self._models.values():
            self._ids.setdefault(model.provider, {})[model.id] = model
        for model in self._models.values():
            for alias in model.aliases:
                self._aliases.setdefault(model.provider, {})[alias] = model
        rank = {p: i for i, p in enumerate(PROVIDER_PREFERENCE)}
        order = sorted(self._ids, key=lambda p: (rank.get(p, len(rank)), p))
        self._provider_order: Tuple[str, ...] = tuple(order)
        self._azure_deployments: Dict[str, str] = dict(azure_deployments or {})
        self._memo: Dict[Tuple[str, Optional[str]], Optional[ModelPrice]] = {}

    @classmethod
    def load(cls, *paths: PathLike, include_default: bool = True) -> "Catalog":
        """The bundled catalog (unless ``include_default=False``) overridden by each file in turn.

        An entry in a later file replaces the earlier entry with the same (provider, id) whole.
        """
        models: List[ModelPrice] = []
        versions: List[str] = []
        if include_default:
            meta, bundled = _bundled()
            models.extend(bundled)
            versions.append(meta.get("catalog_version", ""))
        for path in paths:
            meta, user = read_catalog_file(path)
            models.extend(user)
            if not include_default and not versions:
                versions.append(meta.get("catalog_version", "user"))
        version = versions[0] if versions else "empty"
        if include_default and paths:
            version += "+user"
        return cls(models, version)

    @property
    def version(self) -> str:
        return self._version

    def entries(self) -> List[ModelPrice]:
        return [self._models[key] for key in sorted(self._models)]

    def __len__(self) -> int:
        return len(self._models)

    def add_azure_deployments(self, mapping: Mapping[str, str]) -> None:
        """Map Azure OpenAI deployment names (what spans carry as the model) to model ids."""
        self._azure_deployments.update(mapping)
        self._memo = {}

    def resolve(self, model: str, provider: Optional[str] = None) -> Optional[ModelPrice]:
        """The price entry for a model name as a span carries it, or None if unknown (never a zero price)."""
        key = (model, provider)
        try:
            return self._memo[key]
        except KeyError:
            pass
        result = self._resolve(model, provider) if model else None
        if len(self._memo) >= _MEMO_SIZE:
            self._memo = {}  # bounded: a burst of distinct names must not grow memory forever
        self._memo[key] = result
        return result

    # -- resolution rules, in order ---------------------------------------------------------

    def _providers(self, provider: Optional[str]) -> Tuple[str, ...]:
        if provider is None:
            return self._provider_order
        return _PROVIDER_GROUPS.get(provider, (provider,))

    def _find(self, name: str, provider: Optional[str]) -> Optional[ModelPrice]:
        providers = self._providers(provider)
        for p in providers:
            hit = self._ids.get(p, {}).get(name)
            if hit is not None:
                return hit
        for p in providers:
            hit = self._aliases.get(p, {}).get(name)
            if hit is not None:
                return hit
        return None

    def _resolve(self, model: str, provider: Optional[str], deployments: bool = True) -> Optional[ModelPrice]:
        hit = self._find(model, provider)
        if hit is not None:
            return hit
        azure_ok = provider is None or AZURE in self._providers(provider)
        if deployments and azure_ok and model in self._azure_deployments:
            # A deployment names a model, never another deployment (so a=b,b=a cannot loop).
            return self._resolve(self._azure_deployments[model], AZURE, deployments=False)
        head, sep, tail = model.partition("/")
        if sep and head in MODEL_PREFIXES and tail:
            return self._resolve(tail, MODEL_PREFIXES[head], deployments)
        bedrock_ok = provider is None or BEDROCK in self._providers(provider)
        if bedrock_ok and model.startswith("arn:aws") and "/" in model:
            # arn:aws:bedrock:<region>:<account>:inference-profile/us.anthropic.claude-... -> the last part
            return self._resolve(model.rsplit("/", 1)[1], BEDROCK, deployments)
        if bedrock_ok:
            regional = _BEDROCK_REGION_PREFIX.match(model)
            if regional:
                hit = self._resolve(regional.group(1), BEDROCK, deployments)
                if hit is not None:
                    return hit
        snapshot = _SNAPSHOT_SUFFIX.match(model)
        if snapshot:
            hit = self._resolve(snapshot.group(1), provider, deployments)
            if hit is not None:
                return hit
        if provider is not None and self._providers(provider) == (AZURE,):
            # Azure OpenAI sells OpenAI's models at OpenAI's list prices when it has no entry of its own.
            return self._resolve(model, "openai", deployments)
        return None


# ---------------------------------------------------------------------------------------------
# Environment


def parse_azure_deployments(value: str, variable: str = ENV_AZURE_DEPLOYMENTS) -> Dict[str, str]:
    """``"my-deploy=gpt-4o,other=gpt-4o-mini"`` -> {"my-deploy": "gpt-4o", ...}."""
    mapping: Dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, model = (part.strip() for part in item.partition("="))
        if not sep or not name or not model:
            raise ConfigError(f"{variable}: bad item {item!r}: expected DEPLOYMENT=MODEL, e.g. my-deploy=gpt-4o")
        mapping[name] = model
    return mapping


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The bundled catalog + files in $OTEL_AI_COST_PRICING_FILES + $OTEL_AI_COST_AZURE_DEPLOYMENTS. Cached."""
    files = [f for f in os.environ.get(ENV_PRICING_FILES, "").split(os.pathsep) if f.strip()]
    for f in files:
        if not os.path.isfile(f):
            raise ConfigError(f"{ENV_PRICING_FILES}: bad item {f!r}: no such file")
    catalog = Catalog.load(*files)
    deployments = os.environ.get(ENV_AZURE_DEPLOYMENTS, "")
    if deployments.strip():
        catalog.add_azure_deployments(parse_azure_deployments(deployments))
    return catalog

