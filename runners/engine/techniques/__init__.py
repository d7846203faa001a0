"""Acceleration techniques as small step objects, registered by name (like Keras callbacks).

One module per family (parallelism, precision, quantization, compression, training, ...),
found here with pkgutil: a technique is one ``@register``-ed ``TechniqueStep`` subclass in
one of them, and a new family is one new module with an ``ORDER`` (its place in the
catalog). ``base`` holds the class, the registry and the checks; modules whose names begin
with "_" hold helpers that several families share. No module imports a framework at import
time: the web process validates recipes with these classes.

A recipe is a list of steps.  The run calls each step's hooks in recipe order:

- ``configure(ctx)``              before the model is built (dtype policies, backend checks,
                                  process-wide framework settings); may change
                                  ``ctx.training``, the effective training settings;
- ``scope(ctx)``                  a context manager or None; build, compile and fit run
                                  inside every scope given (a distribution strategy's scope);
- ``transform_model(ctx, model)`` after the build, before compile; returns the model to use;
- ``make_optimizer(ctx, optimizer)`` after the base optimizer is made; returns the optimizer;
- ``compile_options(ctx)``        keyword arguments merged into ``model.compile``;
- ``fit_options(ctx, options)``   the keyword arguments of ``model.fit``; returns them changed;
- ``callbacks(ctx)``              Keras callbacks added to ``model.fit``;
- ``after_train(ctx)``            after training (conversion; may replace ``ctx.runtime``, the
                                  artifact that gets measured, and set ``ctx.reference``);
- ``result_fields(ctx)``          a dict merged into the result event.
"""

import importlib
import pkgutil

from runners.engine.techniques import base
from runners.engine.techniques.base import (
    MAX_STEPS,
    TECHNIQUES,
    ModelFacts,
    TechniqueStep,
    build_steps,
    check_applicable,
    check_step,
    check_steps,
    jit_compiled,
    quantizes,
    register,
    steps_schema,
    validate_step,
    validate_steps,
)

__all__ = ["MAX_STEPS", "TECHNIQUES", "ModelFacts", "TechniqueStep", "build_steps",
           "check_applicable", "check_step", "check_steps", "families", "jit_compiled",
           "quantizes", "register", "steps_schema", "validate_step", "validate_steps"]


def _load_families():
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            found[module.name] = importlib.import_module(f"{__name__}.{module.name}")
    return found


# family (module name) -> module, in catalog order.
families = dict(sorted(_load_families().items(), key=lambda item: (item[1].ORDER, item[0])))
base.order_registry(lambda family: list(families).index(family))
