"""Pricing catalog: what each model costs, and how a model name on a span finds its price.

``default_catalog().resolve("gpt-4o", provider="openai")`` -> ModelPrice, or None when unknown.
"""
from ..errors import CatalogError
from ._catalog import Catalog, default_catalog
from ._model import PRICE_FIELDS, ContextTier, ModelPrice, PriceSet

__all__ = ["Catalog", "CatalogError", "ContextTier", "ModelPrice", "PriceSet", "PRICE_FIELDS", "default_catalog"]
