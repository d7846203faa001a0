"""The technique catalog the recipe builder draws from, read off the engine's registry so the
form offers exactly the steps and parameters the engine validates, in the registry's order
(by family), with each class's own label and help."""

import json

from runners.engine import fields
from runners.engine.techniques import TECHNIQUES


def _kind(field):
    if isinstance(field, fields.Choice):
        return "choice"
    if field.default is None:
        return "optional"  # null, or a list left empty: the engine's default
    if isinstance(field, fields.Boolean):
        return "bool"
    if isinstance(field, fields.Integer):
        return "int"
    if isinstance(field, fields.Number):
        return "float"
    return "text"


def catalog() -> list[dict]:
    return [{
        "technique": name,
        "label": cls.label,
        "help": cls.help,
        "params": [
            {"name": param, "default": field.default, "kind": _kind(field),
             "choices": list(getattr(field, "options", ()))}
            for param, field in cls.fields.items()
        ],
    } for name, cls in TECHNIQUES.items()]


def choices() -> list[tuple[str, str]]:
    """(name, label) of every technique, for a filter's select."""
    return [(name, cls.label) for name, cls in TECHNIQUES.items()]


def presets() -> list[dict]:
    """One-click recipes: each technique with its defaults, or the presets it names (each
    PTQ mode)."""
    out = []
    for name, cls in TECHNIQUES.items():
        for label, params in cls.presets or ((cls.label, {}),):
            key = "-".join([name, *(str(value) for value in params.values())])
            out.append({"key": key, "label": label,
                        "recipe": {"name": label,
                                   "steps": [{"technique": name, **cls.defaults, **params}]}})
    return out


def _param_text(name, field):
    if isinstance(field, fields.Choice):
        values = " \\| ".join(field.options)
    elif isinstance(field, (fields.Integer, fields.Number)):
        low = "(" if getattr(field, "above", False) else "["
        high = ")" if getattr(field, "below", False) else "]"
        values = f"{low}{field.low:,}, {field.high:,}{high}"
    elif isinstance(field, fields.Boolean):
        values = "true \\| false"
    elif isinstance(field, fields.ListOf):
        values = "list"
    else:
        values = "text"
    if field.nullable:
        values += " or null"
    default = "" if field.default in (fields.MISSING, fields.OMIT) \
        else f", default {json.dumps(field.default)}"
    return f"`{name}` {values}{default}"


def reference_markdown() -> str:
    """Every registered technique as Markdown, by family: name, label, parameters and
    help, as the classes say them (``manage.py techniques`` prints it)."""
    from runners.engine.techniques import families

    lines = ["# Techniques", "",
             "Generated from the technique classes in `runners/engine/techniques/` "
             "(`python manage.py techniques`).", ""]
    for family, module in families.items():
        members = [cls for cls in TECHNIQUES.values() if cls.family == family]
        if not members:
            continue
        about = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
        lines += [f"## {family.replace('_', ' ').capitalize()}", "",
                  f"`runners/engine/techniques/{family}.py`: {about}", "",
                  "| technique | label | parameters | what it does |",
                  "| --- | --- | --- | --- |"]
        for cls in members:
            params = "; ".join(_param_text(name, field) for name, field in cls.fields.items())
            what = cls.help + (" Ships a quantized model, measured beside its float32 twin."
                               if cls.quantizes else "")
            lines.append(f"| `{cls.technique}` | {cls.label} | {params or '–'} | {what} |")
        lines.append("")
    return "\n".join(lines)
