"""Typed fields of the spec: each checks a JSON value, fills its default and describes itself
as JSON Schema. Pure Python, no framework, so the web process, the CLI and the engine share
them (runners.engine.schema puts them together).

A field's ``clean(value, path, problems)`` returns the cleaned value, or ``INVALID`` after
adding a message under ``path`` ("training.epochs"). Messages read as sentences for a user:
"Epochs must be between 1 and 500 (got 900)."
"""

import difflib
import math

MISSING = object()  # no default: the key is required
OMIT = object()  # no default: the key may be left out, and stays out
INVALID = object()

MAX_DEPTH = 32
# The most messages plain_json_problems gives for one value.
MAX_MESSAGES = 20
# The longest text anywhere in a spec or a JSON body: names and notes are far shorter (their
# fields say), this bounds what a key or an unchecked value can carry to the database.
MAX_TEXT = 10_000
TEXT_MESSAGE = "Text cannot contain NUL characters or lone surrogates (invalid Unicode)."


class Invalid(ValueError):
    """Messages keyed by path; ``str()`` joins them, for the CLI and the engine's errors."""

    def __init__(self, messages, *, paths=True):
        self.messages = {path: list(found) for path, found in messages.items()}
        super().__init__(" ".join(
            message if path in ("", "spec") or not paths else f"{path}: {message}"
            for path, found in self.messages.items() for message in found))


class Problems:
    def __init__(self):
        self.messages = {}

    def add(self, path, message):
        found = self.messages.setdefault(path or "spec", [])
        if message not in found:
            found.append(message)

    def __bool__(self):
        return bool(self.messages)

    def under(self, prefix):
        return any(path == prefix or path.startswith(prefix + ".") for path in self.messages)

    def raise_if_any(self, *, paths=True):
        if self.messages:
            raise Invalid(self.messages, paths=paths)


def text_problem(text):
    """Why no database column stores this text (a NUL, a lone surrogate such as "\\ud800",
    which parses from JSON but has no UTF-8 form), or None."""
    if "\x00" in text:
        return TEXT_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return TEXT_MESSAGE
    return None


def plain_json_problems(value, path="", *, max_depth=MAX_DEPTH, max_text=MAX_TEXT):
    """Messages keyed by path for what no JSON column or spec check expects anywhere in a
    decoded JSON value: nesting deeper than max_depth (copy.deepcopy recurses), NaN and
    Infinity (jsonb refuses them), bad text in a value or a key, text over max_text."""
    problems = Problems()

    def walk(item, where, level):
        if len(problems.messages) >= MAX_MESSAGES:
            return  # enough to act on; a crafted body could otherwise ask for millions
        if level > max_depth:
            problems.add(where, f"Nested deeper than {max_depth} levels.")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.add(where, "Numbers must be finite (not NaN or Infinity).")
        elif isinstance(item, str):
            _text(problems, where, item, max_text)
        elif isinstance(item, dict):
            for key, child in item.items():
                key = str(key)
                if text_problem(key) or len(key) > max_text:
                    _text(problems, where, key, max_text)
                    continue
                walk(child, f"{where}.{_part(key)}" if where else _part(key), level + 1)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                walk(child, f"{where}.{index}" if where else str(index), level + 1)

    walk(value, path, 0)
    return problems.messages


def _part(key):
    """A key as a part of a message's path: cut short, so that no path grows with the keys
    a body sends."""
    return key if len(key) <= 40 else f"{key[:40]}…"


def _text(problems, where, text, max_text):
    problem = text_problem(text)
    if problem:
        problems.add(where, problem)
    elif len(text) > max_text:
        problems.add(where, f"Text is longer than {max_text:,} characters.")


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    # An int is finite however long; math.isfinite would overflow converting a huge one.
    return _is_integer(value) or isinstance(value, float) and math.isfinite(value)


def _shown(value, spec="g"):
    """A number a user sent, for a message: a huge integer by its length alone."""
    if _is_integer(value) and abs(value) >= 10**20:
        return f"an integer of {len(str(abs(value))):,} digits"
    return format(value, spec)


def _label(path):
    return path.rsplit(".", 1)[-1].replace("_", " ")


def _sentence(label):
    return label[:1].upper() + label[1:]


class Field:
    """A value with an optional default and label (the path's last part otherwise)."""

    json_type = None

    def __init__(self, default=MISSING, *, label=None, nullable=False, null_default=False,
                 help=""):
        """``nullable``: None is a value of its own; ``null_default``: None stands for the
        key left out (its default, or no key at all)."""
        self.default = default
        self.label = label
        self.nullable = nullable
        self.null_default = null_default
        self.help = help

    @property
    def required(self):
        return self.default is MISSING

    def name(self, path):
        return self.label or _label(path)

    def clean(self, value, path, problems):
        if value is None and self.nullable:
            return None
        return self.check(value, path, problems)

    def check(self, value, path, problems):
        raise NotImplementedError

    def json_schema(self):
        schema = self.describe()
        if self.nullable or self.null_default:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.default not in (MISSING, OMIT):
            schema["default"] = self.default
        if self.help:
            schema["description"] = self.help
        return schema

    def describe(self):
        return {"type": self.json_type}


class Integer(Field):
    json_type = "integer"

    def __init__(self, low, high, default=MISSING, **options):
        super().__init__(default, **options)
        self.low, self.high = low, high

    @property
    def bounds(self):
        return self.low, self.high

    def check(self, value, path, problems):
        # 16.0 is an integer to JSON Schema too; older clients wrote whole numbers so.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_integer(value):
            problems.add(path, f"{_sentence(self.name(path))} must be an integer.")
            return INVALID
        if not self.low <= value <= self.high:
            problems.add(path, f"{_sentence(self.name(path))} must be between {self.low:,} and "
                               f"{self.high:,} (got {_shown(value, ',')}).")
            return INVALID
        return value

    def describe(self):
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


class Number(Field):
    """A finite number; ``above`` makes the low bound exclusive (a rate of 0 means nothing)."""

    json_type = "number"

    def __init__(self, low, high, default=MISSING, *, above=False, below=False, **options):
        super().__init__(default, **options)
        self.low, self.high, self.above, self.below = low, high, above, below

    @property
    def bounds(self):
        return self.low, self.high

    def check(self, value, path, problems):
        if not _is_number(value):
            problems.add(path, f"{_sentence(self.name(path))} must be a number.")
            return INVALID
        low_ok = value > self.low if self.above else value >= self.low
        high_ok = value < self.high if self.below else value <= self.high
        if not (low_ok and high_ok):
            if self.above or self.below:
                low = f"above {self.low:g}" if self.above else f"at least {self.low:g}"
                high = f"below {self.high:g}" if self.below else f"at most {self.high:g}"
                bounds = f"{low} and {high}"
            else:
                bounds = f"between {self.low:g} and {self.high:g}"
            problems.add(path, f"{_sentence(self.name(path))} must be {bounds} "
                               f"(got {_shown(value)}).")
            return INVALID
        return value

    def describe(self):
        return {"type": "number",
                "exclusiveMinimum" if self.above else "minimum": self.low,
                "exclusiveMaximum" if self.below else "maximum": self.high}


class Boolean(Field):
    json_type = "boolean"

    def check(self, value, path, problems):
        if not isinstance(value, bool):
            problems.add(path, f"{_sentence(self.name(path))} must be true or false.")
            return INVALID
        return value


class Choice(Field):
    def __init__(self, options, default=MISSING, **kwargs):
        super().__init__(default, **kwargs)
        self.options = tuple(options)

    def check(self, value, path, problems):
        if not isinstance(value, str) or value not in self.options:
            problems.add(path, f"{_sentence(self.name(path))} must be one of "
                               f"{', '.join(self.options)}{did_you_mean(value, self.options)}.")
            return INVALID
        return value

    def describe(self):
        return {"type": "string", "enum": list(self.options)}


class Text(Field):
    """Text stripped of surrounding space; ``blank=False`` refuses an empty one."""

    json_type = "string"

    def __init__(self, max_length, default=MISSING, *, blank=True, blank_message=None,
                 **options):
        super().__init__(default, **options)
        self.max_length, self.blank, self.blank_message = max_length, blank, blank_message

    def check(self, value, path, problems):
        if not isinstance(value, str):
            problems.add(path, f"{_sentence(self.name(path))} must be text.")
            return INVALID
        problem = text_problem(value)
        if problem:
            problems.add(path, problem)
            return INVALID
        if len(value) > self.max_length:  # as sent, as JSON Schema's maxLength counts
            problems.add(path, f"{_sentence(self.name(path))} is longer than "
                               f"{self.max_length:,} characters.")
            return INVALID
        value = value.strip()
        if not value and not self.blank:
            problems.add(path, self.blank_message
                         or f"{_sentence(self.name(path))} cannot be empty.")
            return INVALID
        return value

    def describe(self):
        return {"type": "string", "maxLength": self.max_length,
                **({} if self.blank else {"minLength": 1})}


class ListOf(Field):
    """A JSON list of items of one field. INVALID when any item is; with ``each=True`` the
    list itself, INVALID in place of each bad item, so that checks across the good items
    (a spec's recipes: names used twice, steps the model cannot take) still run."""

    def __init__(self, item, default=MISSING, *, min_items=0, max_items, each=False,
                 **options):
        super().__init__(default, **options)
        self.item, self.min_items, self.max_items = item, min_items, max_items
        self.each = each

    def check(self, value, path, problems):
        name = _sentence(self.name(path))
        if not isinstance(value, list):
            problems.add(path, f"{name} must be a list.")
            return INVALID
        if not self.min_items <= len(value) <= self.max_items:
            many = (f"{self.min_items} to {self.max_items}" if self.min_items
                    else f"at most {self.max_items}")
            problems.add(path, f"{name} must have {many} items (got {len(value)}).")
            return INVALID
        cleaned = [self.item.clean(item, f"{path}.{index}", problems)
                   for index, item in enumerate(value)]
        if self.each:
            return cleaned
        return INVALID if any(item is INVALID for item in cleaned) else cleaned

    def describe(self):
        return {"type": "array", "items": self.item.json_schema(),
                "minItems": self.min_items, "maxItems": self.max_items}


class Object(Field):
    """A JSON object with known keys: an unknown one is refused with a "did you mean" hint,
    a missing one gets its field's default (or a message when it has none)."""

    json_type = "object"

    def __init__(self, fields, default=MISSING, **options):
        super().__init__(default, **options)
        self.fields = dict(fields)

    @property
    def defaults(self):
        return {key: field.default for key, field in self.fields.items()
                if field.default not in (MISSING, OMIT)}

    def check(self, value, path, problems):
        if not isinstance(value, dict):
            problems.add(path, f"{_sentence(self.name(path) if path else 'the spec')} must be "
                               "an object.")
            return INVALID
        ok = True
        for key in value:
            if key not in self.fields:
                where = path or "spec"
                of = f" for {self.name(path)}" if path or self.label else ""
                problems.add(where, f"Unknown setting {shown(key)}{of}"
                                    f"{did_you_mean(key, self.fields)}; "
                                    f"{_takes(self.fields)}.")
                ok = False
        cleaned = {}
        for key, field in self.fields.items():
            where = f"{path}.{key}" if path else key
            given = key in value and not (value[key] is None and field.null_default)
            if given:
                cleaned[key] = field.clean(value[key], where, problems)
            elif field.default is OMIT:
                continue
            elif field.default is not MISSING:
                # Through clean, so that an object's default ({}) gets its own defaults.
                cleaned[key] = field.clean(_copy(field.default), where, problems)
            else:
                problems.add(where, f"'{key}' is required.")
                ok = False
        if not ok or any(item is INVALID for item in cleaned.values()):
            return INVALID
        return cleaned

    def describe(self):
        required = [key for key, field in self.fields.items() if field.required]
        return {"type": "object", "additionalProperties": False,
                "properties": {key: field.json_schema() for key, field in self.fields.items()},
                **({"required": required} if required else {})}


class Tagged(Field):
    """An object whose ``tag`` key ("technique", "arch", "name") picks the Object that checks
    the rest of it."""

    json_type = "object"

    def __init__(self, tag, variants, default=MISSING, *, default_tag=None, **options):
        super().__init__(default, **options)
        self.tag, self.variants, self.default_tag = tag, dict(variants), default_tag

    def check(self, value, path, problems):
        if not isinstance(value, dict):
            problems.add(path, f"{_sentence(self.name(path))} must be an object.")
            return INVALID
        chosen = value.get(self.tag, self.default_tag)
        where = f"{path}.{self.tag}" if path else self.tag
        if not isinstance(chosen, str) or chosen not in self.variants:
            problems.add(where, f"{_sentence(self.name(path))} {self.tag} must be one of "
                                f"{', '.join(self.variants)}"
                                f"{did_you_mean(chosen, self.variants)}.")
            return INVALID
        rest = {key: item for key, item in value.items() if key != self.tag}
        cleaned = self.variants[chosen].clean(rest, path, problems)
        return INVALID if cleaned is INVALID else {self.tag: chosen, **cleaned}

    def describe(self):
        variants = []
        for name, variant in self.variants.items():
            schema = variant.json_schema()
            schema["properties"] = {self.tag: {"const": name}, **schema["properties"]}
            if name != self.default_tag:
                schema["required"] = [self.tag, *schema.get("required", [])]
            variants.append(schema)
        return {"oneOf": variants}

    def json_schema(self):
        schema = self.describe()
        if self.help:
            schema["description"] = self.help
        return schema


def shown(text, limit=40):
    """Text a user sent, quoted for a message: cut short, so that a message never carries
    a 10 KB key back."""
    text = str(text)
    return f"'{text[:limit]}…'" if len(text) > limit else f"'{text}'"


def did_you_mean(value, known):
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _takes(fields):
    return f"it takes {', '.join(fields)}" if fields else "it takes no settings"


def _copy(value):
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
