"""Checks on JSON bodies before they reach the spec gate or a JSONField.

JSON allows what PostgreSQL's jsonb and the spec gate do not expect: 1e999 parses to an
infinite float (jsonb refuses it, and the engine's int() of it overflows), a "\\u0000" in
a string is refused by PostgreSQL, and deep nesting makes copy.deepcopy recurse. Each
would be a 500 after the request was accepted; here they are a 400 keyed by spec path."""

import math

MAX_DEPTH = 32


def plain_json_errors(value, path="", depth=0) -> dict[str, list[str]]:
    """Messages keyed by the path of each value the database or the engine cannot take."""
    errors: dict[str, list[str]] = {}

    def add(where, message):
        messages = errors.setdefault(where or "spec", [])
        if message not in messages:
            messages.append(message)

    def walk(item, where, level):
        if level > MAX_DEPTH:
            add(where, f"Nested deeper than {MAX_DEPTH} levels.")
        elif isinstance(item, float) and not math.isfinite(item):
            add(where, "Numbers must be finite.")
        elif isinstance(item, str) and ("\x00" in item or not _encodes(item)):
            add(where, "Text cannot contain NUL characters or lone surrogates.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in str(key):
                    add(where, "Keys cannot contain NUL characters.")
                    continue
                walk(child, f"{where}.{key}" if where else str(key), level + 1)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                walk(child, f"{where}.{index}" if where else str(index), level + 1)

    walk(value, path, depth)
    return errors


def _encodes(text):
    """Whether the text is valid Unicode: a lone surrogate ("\\ud800" in JSON) is not, and
    no database column can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
