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


@register.filter
def duration(seconds):
    """Seconds as people read them: "45 s", "3 min 12 s", "2 h 05 min"; "" for None."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(
            seconds):
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
