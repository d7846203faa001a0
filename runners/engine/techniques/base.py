"""The technique step's base class, the registry, and the checks every door shares.

A technique is a ``TechniqueStep`` subclass in one of this package's family modules,
decorated with ``@register``. Everything the rest of AccelWeb needs to know of it is on
the class: its name (``technique``), its ``label`` and ``help`` for the form and the docs,
its parameters (``fields``), the techniques it cannot share a recipe with
(``conflicts``), whether it ships a quantized model (``quantizes``) and whether it
jit-compiles the model (``jit_compile``), the one-click recipes it offers (``presets``),
the parameters the benchmark script tries (``bench_params``), its hardware warning
(``advise``) and the models it cannot take (``applies_to``). The engine calls its hooks
(see the package's docstring).

Parameters are plain JSON values checked by ``validate_step`` without importing a framework,
so the web process validates recipes with the same rules the engine applies.
"""

from dataclasses import dataclass

from runners.engine import fields
from runners.engine.events import EngineError

TECHNIQUES = {}
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
MAX_STEPS = 16


def register(cls):
    """Add a technique class to TECHNIQUES under its name; its parameters get their labels
    and the class its defaults and family (the module it lives in)."""
    if not cls.technique or cls.technique in TECHNIQUES:
        raise ValueError(f"A technique needs a name of its own (got {cls.technique!r}).")
    for key, field in cls.fields.items():
        # "The pruning target_sparsity must be at least 0 and below 1 (got 2)."
        field.label = field.label or f"the {cls.technique} {key}"
    cls.defaults = fields.Object(cls.fields).defaults
    cls.family = cls.__module__.rsplit(".", 1)[-1]
    cls.label = cls.label or cls.technique.replace("_", " ")
    TECHNIQUES[cls.technique] = cls
    return cls


def order_registry(position):
    """Put TECHNIQUES in catalog order: by ``position(family)``, then in the order the
    classes were registered (their order in their module)."""
    ordered = sorted(enumerate(TECHNIQUES.values()),
                     key=lambda item: (position(item[1].family), item[0]))
    TECHNIQUES.clear()
    TECHNIQUES.update((cls.technique, cls) for _, cls in ordered)


def quantizes(name):
    """Whether the technique ships a quantized model, measured beside its float32 twin
    (False for a name no longer registered: a result of an older engine)."""
    return isinstance(name, str) and getattr(TECHNIQUES.get(name), "quantizes", False)


def jit_compiled(names):
    """Whether any of these techniques jit-compiles the model."""
    return any(isinstance(name, str) and getattr(TECHNIQUES.get(name), "jit_compile", False)
               for name in names)


@dataclass(frozen=True)
class ModelFacts:
    """What the door knows of a model before any run: its arch (for an upload, its name in
    quotes, as messages say it), and for the zoo's and for uploads checked since layer
    inventories were kept, its layer classes ({name: count}), whether it is one straight
    chain of layers, and whether it nests models. None: unknown (an upload checked before),
    and a step that needs the fact checks it at run time."""

    arch: str
    layers: dict | None = None
    chain: bool | None = None
    nested: bool | None = None

    def has(self, *classes):
        """Whether the model has a layer of one of these classes (None: unknown)."""
        if self.layers is None:
            return None
        return any(self.layers.get(name) for name in classes)


class TechniqueStep:
    """One technique: its description and rules as class attributes, its effect on a run as
    hooks. Every hook of the base class does nothing, so a step overrides only the stages
    it uses."""

    technique = ""
    # The form's and the docs' name for it, and what a user should know before choosing it.
    label = ""
    help = ""
    # parameter -> fields.Field (its type, bounds and default); other parameters are refused.
    fields = {}
    # technique -> why it cannot share a recipe with this one.
    conflicts = {}
    requires_backend = None
    # It ships a quantized model, measured beside the float32 model of the same weights
    # (``ctx.reference``): its speedup is read against that, not against the baseline.
    quantizes = False
    # It compiles the model with XLA (the measured Keras runtime is jit-compiled too).
    jit_compile = False
    # One-click recipes in the form: (label, parameters) each; none: one with the defaults.
    presets = ()
    # The parameters bench/recipes.py tries, one row each.
    bench_params = ({},)

    @classmethod
    def advise(cls, params, machine, model_params):
        """A warning when this step is known to slow ``machine`` down, or None.

        ``params``: the step's parameters over its defaults (not validated: the form asks
        while the user types); ``machine``: an advisor.Machine (``kind`` "cpu" or "gpu", and
        the CPU flags); ``model_params``: the model's parameter count, or None when unknown.
        """
        return None

    def __init__(self, **params):
        self.params = self.validate(params)

    @classmethod
    def validate(cls, params):
        """The parameters with defaults filled in; fields.Invalid (a ValueError) otherwise."""
        problems = fields.Problems()
        filled = cls.clean(params, "", problems)
        problems.raise_if_any(paths=False)
        return filled

    @classmethod
    def clean(cls, params, path, problems):
        filled = fields.Object(cls.fields, label=cls.technique).clean(params, path, problems)
        if filled is fields.INVALID:
            return filled
        try:
            cls.check(filled)
        except ValueError as exc:
            problems.add(path, str(exc))
            return fields.INVALID
        return filled

    @classmethod
    def check(cls, params):
        """Checks across parameters; raise ValueError with a message for the user."""

    @classmethod
    def applies_to(cls, params, model):
        """Why this step cannot apply to the model (a ModelFacts), or None. Asked at the
        door, so that a recipe that would fail at run time is refused before it is stored."""
        return None

    def configure(self, ctx):
        if self.requires_backend and ctx.backend != self.requires_backend:
            raise EngineError(
                f"{self.technique} needs the {BACKEND_NAMES[self.requires_backend]} backend "
                f"(KERAS_BACKEND={self.requires_backend}); this run uses {ctx.backend}"
            )

    def scope(self, ctx):
        return None

    def transform_model(self, ctx, model):
        return model

    def make_optimizer(self, ctx, optimizer):
        return optimizer

    def compile_options(self, ctx):
        return {}

    def fit_options(self, ctx, options):
        return options

    def callbacks(self, ctx):
        return []

    def after_train(self, ctx):
        pass

    def result_fields(self, ctx):
        return {}


def validate_step(step):
    """The step with defaults filled in; fields.Invalid (a ValueError) with a readable
    message otherwise."""
    problems = fields.Problems()
    cleaned = check_step(step, "", problems)
    problems.raise_if_any(paths=False)  # each message names its technique and parameter
    return cleaned


def check_step(step, path, problems):
    """One step checked, its messages added under path; fields.INVALID when it is unusable."""
    if not isinstance(step, dict) or not isinstance(step.get("technique"), str):
        problems.add(path, 'Each step must be an object with a "technique" name.')
        return fields.INVALID
    name = step["technique"]
    if name not in TECHNIQUES:
        problems.add(path, f"Unknown technique {fields.shown(name)}"
                           f"{fields.did_you_mean(name, TECHNIQUES)}; available: "
                           f"{', '.join(sorted(TECHNIQUES))}.")
        return fields.INVALID
    params = {key: value for key, value in step.items() if key != "technique"}
    cleaned = TECHNIQUES[name].clean(params, path, problems)
    return fields.INVALID if cleaned is fields.INVALID else {"technique": name, **cleaned}


def check_steps(steps, path, problems):
    """A recipe's steps checked one by one and together: each technique at most once (a
    second would only conflict), and no two techniques that exclude each other. Returns the
    cleaned steps, or fields.INVALID."""
    if not isinstance(steps, list):
        problems.add(path, "Steps must be a list.")
        return fields.INVALID
    if len(steps) > MAX_STEPS:
        problems.add(path, f"A recipe has at most {MAX_STEPS} steps (got {len(steps)}).")
        return fields.INVALID
    cleaned = [check_step(step, f"{path}.{index}", problems) for index, step in enumerate(steps)]
    named = [step["technique"] for step in cleaned if step is not fields.INVALID]
    for name in sorted({name for name in named if named.count(name) > 1}):
        problems.add(path, f"Technique '{name}' appears twice in the recipe; use it once.")
    for name in named:
        for other, why in TECHNIQUES[name].conflicts.items():
            if other in named:
                problems.add(path, why)
    if len(named) < len(cleaned) or problems.under(path):
        return fields.INVALID
    return cleaned


def validate_steps(steps):
    """A recipe's steps checked as check_steps does; fields.Invalid with its messages under
    "steps", each about one step reading "Step 2: ..."."""
    problems = fields.Problems()
    cleaned = check_steps(steps, "steps", problems)
    if problems:
        raise fields.Invalid({"steps": [
            f"Step {int(path.split('.')[1]) + 1}: {message}" if path.count(".") else message
            for path, messages in problems.messages.items() for message in messages]},
            paths=False)
    return cleaned


def check_applicable(steps, path, problems, model):
    """Messages under path.N for each cleaned step that cannot apply to the model (a
    ModelFacts)."""
    for index, step in enumerate(steps):
        params = {key: value for key, value in step.items() if key != "technique"}
        why = TECHNIQUES[step["technique"]].applies_to(params, model)
        if why:
            problems.add(f"{path}.{index}", why)


def steps_schema():
    """The JSON Schema of a recipe's steps: one object per technique, by its name."""
    return fields.Tagged("technique", {name: fields.Object(cls.fields)
                                       for name, cls in sorted(TECHNIQUES.items())}).describe()


def build_steps(step_specs):
    """Step objects for a recipe, checked as check_steps does (without model facts)."""
    problems = fields.Problems()
    cleaned = check_steps(step_specs, "steps", problems)
    problems.raise_if_any()
    return [TECHNIQUES[spec["technique"]](**{k: v for k, v in spec.items() if k != "technique"})
            for spec in cleaned]
