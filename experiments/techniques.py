"""The technique catalog the recipe builder draws from, read off the engine's registry so the
form offers exactly the steps and parameters the engine validates, in the registry's order
(by family), with each class's own label and help."""

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

