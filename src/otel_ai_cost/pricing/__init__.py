"""Pricing catalog. (Contract stub: implemented by the pricing work.)"""
from ._model import ContextTier, ModelPrice, PriceSet, PRICE_FIELDS

__all__ = ["Catalog", "CatalogError", "ContextTier", "ModelPrice", "PriceSet", "PRICE_FIELDS", "default_catalog"]
