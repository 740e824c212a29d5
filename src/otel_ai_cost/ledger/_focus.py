"""The call ledger as FOCUS v1.2 rows (FinOps Open Cost and Usage Specification, Cost and Usage dataset).

One row per call: ChargeCategory ``Usage``, ChargeFrequency ``Usage-Based``, the charge period the
call's start and end. The cost is the catalog's list price, with no discount known here, so
BilledCost = EffectiveCost = ListCost = ContractedCost = ``gen_ai.usage.cost.amount``. The billing
account is not known to a span: BillingAccountId/Name are the provider, SubAccountId/Name the
service (resource ``service.name``). ResourceId/Name are the model, SkuId the catalog entry (and
service tier). The quantities are tokens (input + output). Tags hold the attribution (tenant,
user, cost center, operation, baggage keys). Our own columns are ``x_`` prefixed, as FOCUS asks.
Calls without a cost (unknown model, no usage) have no charge and are left out.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from .. import _semconv as sc
from ._report import Call

FOCUS_VERSION = "1.2"
# The FOCUS v1.2 columns written, spec order (alphabetical), then ours (x_).
COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
    "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
    "x_TraceId", "x_SpanId", "x_Operation", "x_RequestModel", "x_InputTokens", "x_OutputTokens",
    "x_CacheReadTokens", "x_CacheWriteTokens", "x_ReasoningTokens", "x_PricingStatus", "x_EstimatedCost",
    "x_BudgetDecision", "x_AnomalyType",
)
PROVIDER_NAMES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "azure.ai.openai": "Microsoft", "aws.bedrock": "AWS",
    "gcp.gemini": "Google", "gcp.vertex_ai": "Google", "gcp.gen_ai": "Google", "cohere": "Cohere",
    "mistral_ai": "Mistral AI", "groq": "Groq", "x_ai": "xAI", "deepseek": "DeepSeek",
}


def timestamp(seconds: float) -> str:
    """FOCUS date/time: ISO 8601 in UTC with a Z."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _month_bounds(seconds: float) -> tuple[str, str]:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    start = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)
    end = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=timezone.utc)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_row(call: Call) -> Optional[Dict[str, Any]]:
    if call.cost is None:
        return None
    provider = call.provider or "unknown"
    vendor = PROVIDER_NAMES.get(provider, provider)
    model = call.model or "unknown"
    tokens = Decimal(call.input_tokens + call.output_tokens)
    period_start, period_end = _month_bounds(call.start_time)
    sku = call.pricing_model or model
    if call.service_tier:
        sku = f"{sku}:{call.service_tier}"
    tags = {key: value for key, value in (("tenant.id", call.tenant), ("enduser.id", call.user),
                                          (sc.AI_COST_COST_CENTER, call.cost_center),
                                          (sc.GEN_AI_OPERATION_NAME, call.operation)) if value}
    tags.update(call.attributes)
    cost = str(call.cost)
    service = call.service or "unknown_service"
    row: Dict[str, Any] = {name: None for name in COLUMNS}
    row.update({
        "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
        "PricingCurrencyEffectiveCost": cost,
        "BillingAccountId": provider, "BillingAccountName": vendor, "BillingAccountType": "Provider",
        "BillingCurrency": call.currency, "PricingCurrency": call.currency,
        "BillingPeriodStart": period_start, "BillingPeriodEnd": period_end,
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "PricingCategory": "Standard",
        "ChargeDescription": f"{vendor} {model} {call.operation or 'call'}: {call.input_tokens} input and "
                             f"{call.output_tokens} output tokens",
        "ChargePeriodStart": timestamp(call.start_time),
        "ChargePeriodEnd": timestamp(max(call.end_time, call.start_time)),
        "ConsumedQuantity": str(tokens), "ConsumedUnit": "Tokens",
        "PricingQuantity": str(tokens), "PricingUnit": "Tokens",
        "InvoiceIssuerName": vendor, "ProviderName": vendor, "PublisherName": vendor,
        "ResourceId": model, "ResourceName": model, "ResourceType": "Model",
        "ServiceCategory": "AI and Machine Learning", "ServiceSubcategory": "Generative AI",
        "ServiceName": f"{vendor} API", "SkuId": sku, "SkuPriceId": sku, "SkuMeter": "Tokens",
        "SubAccountId": service, "SubAccountName": service, "SubAccountType": "Service",
        "Tags": json.dumps(tags, sort_keys=True),
        "x_TraceId": call.trace_id, "x_SpanId": call.span_id, "x_Operation": call.operation,
        "x_RequestModel": call.request_model, "x_InputTokens": call.input_tokens,
        "x_OutputTokens": call.output_tokens, "x_CacheReadTokens": call.cache_read_tokens,
        "x_CacheWriteTokens": call.cache_write_tokens, "x_ReasoningTokens": call.reasoning_tokens,
        "x_PricingStatus": call.pricing_status,
        "x_EstimatedCost": None if call.estimate is None else str(call.estimate),
        "x_BudgetDecision": call.budget_decision, "x_AnomalyType": call.anomaly_type,
    })
    return row


def focus_rows(calls: Sequence[Call]) -> List[Dict[str, Any]]:
    """The FOCUS rows of the priced calls, oldest first."""
    return [row for call in calls if (row := focus_row(call)) is not None]
