"""Numbers as the results tables print them."""

import math

from django import template

register = template.Library()


@register.filter(is_safe=True)
def fixed(value, digits=4):
    """A number with `digits` decimals, "" for anything else (None, NaN, text): what
    floatformat gives these tables, without its Decimal arithmetic, which cost the
    results of a 50-run experiment about 40 ms of its rendering."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    return f"{value:.{int(digits)}f}"
