"""Function (tool) definitions rendered as the TypeScript-like namespace the OpenAI models see.

The approximation of hmarr/openai-chat-tokens: the rendered block is what ``tokens`` counts for
a request's tools.
"""
from __future__ import annotations

from typing import Any, Iterable


def render_functions(functions: Iterable[dict[str, Any]]) -> str:
    """Function definitions as the model sees them (a TypeScript-like namespace)."""
    lines = ["namespace functions {", ""]
    for function in functions:
        description = function.get("description")
        if description:
            lines.append(f"// {description}")
        name = function.get("name", "")
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters.get("properties"):
            lines.append(f"type {name} = (_: {{")
            lines.append(_render_properties(parameters, 0))
            lines.append("}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _render_properties(schema: dict[str, Any], indent: int) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return ""
    required = schema.get("required") or ()
    lines = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        description = prop.get("description")
        if description and indent < 2:
            lines.append(f"// {description}")
        optional = "" if name in required else "?"
        lines.append(f"{name}{optional}: {_render_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def _render_type(prop: dict[str, Any], indent: int) -> str:
    kind = prop.get("type")
    enum = prop.get("enum")
    if kind == "string":
        return " | ".join(f'"{v}"' for v in enum) if isinstance(enum, list) else "string"
    if kind in ("number", "integer"):
        return " | ".join(str(v) for v in enum) if isinstance(enum, list) else "number"
    if kind in ("boolean", "null"):
        return str(kind)
    if kind == "object":
        return "{\n" + _render_properties(prop, indent + 2) + "\n}"
    if kind == "array":
        items = prop.get("items")
        return f"{_render_type(items, indent)}[]" if isinstance(items, dict) else "any[]"
    return ""
