"""Numbers as the results tables print them."""

import math

from django import template

from ..comparison import budget_verdict as _budget_verdict
from ..comparison import points as _points
from ..comparison import points_interval as _points_interval
from ..comparison import runtime_label

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


@register.filter
def points(fraction, digits=1):
    """An accuracy difference (a fraction) in percentage points: "−1.1 pts"."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        return ""
    return _points(fraction, digits=int(digits))


@register.filter
def budget_points(fraction):
    """An accuracy budget (a fraction) in points: "1 pt", "0.5 pts"."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        return ""
    return _points(fraction, digits=2, signed=False)


@register.filter
def points_interval(ci, digits=1):
    """A 95% interval of an accuracy difference in points: "−2.3 to +0.4 pts"."""
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    return _points_interval(ci, digits=int(digits))


@register.filter
def budget_verdict(delta, budget):
    """Whether an accuracy change is within the experiment's budget, the sign-off's rule."""
    return _budget_verdict(delta, budget)


@register.filter
def runtime(result):
    """The runtime a result's latencies were measured in (comparison.runtime_label)."""
    return runtime_label(result)
