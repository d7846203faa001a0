"""The experiment spec's one schema: its keys, types, bounds and defaults, and the rules
across them, for every door (the form, the API, ``manage.py submit``, the recipe library)
and for the engine. Pure Python: the web process checks a spec without a framework.

Two shapes of one spec share their fields:

- what a user submits (``check_spec``): recipes, uploads named by their ids, replicates;
- what a runner gets (``check_engine_spec``): one recipe's steps, uploads named by paths.

The parts live beside what they describe (``data.DATASETS``, ``zoo.PARAMS``, each
technique's ``fields`` on its class in ``runners.engine.techniques``); this module puts them
together. ``SPEC.json_schema()`` is the API's schema of a spec (/api/schema/).

Uploads are the web's to look up: ``check_spec`` takes a ``lookup`` with
``dataset(id)`` -> {"label", "input_shape", "num_classes", "train_samples",
"test_samples"} or None, and ``model(id)`` -> {"label", "input_shape", "num_classes",
"params", "facts"} or None (None: not one of the team's).
"""

import copy
import os

from runners.engine import data, public, techniques, zoo
from runners.engine.fields import (
    INVALID,
    OMIT,
    Choice,
    Field,
    Integer,
    Invalid,
    ListOf,
    Number,
    Object,
    Problems,
    Tagged,
    Text,
    did_you_mean,
    plain_json_problems,
    shown,
)

EPOCHS = (1, 500)
BATCH_SIZE = (1, 65_536)
LEARNING_RATE = (1e-7, 10.0)
SEED = (0, 2**31 - 1)
REPEATS = (1, 10)
ACCURACY_BUDGET = (0.0, 1.0)
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
HARDWARE = ("cpu", "gpu")
MAX_RECIPES = 20
ID = (1, 2**63 - 1)
# trials, latency_samples: each run's own measurement, right after it trained (the figures
# of its result). executions, rounds, calls: the benchmark stage, which measures every
# run's model side by side and gives the speedups; warmup is for both.
BENCHMARK_LIMITS = {"trials": (1, 50), "latency_samples": (1, 10_000), "warmup": (0, 1000),
                    "executions": (2, 20), "rounds": (2, 200), "calls": (1, 1000)}
STAGE_DEFAULTS = {"executions": 5, "rounds": 20, "calls": 20, "warmup": 20}
RUN_BENCHMARK_KEYS = ("trials", "latency_samples", "warmup")
# What a run measures of itself when the spec says nothing (batch_size None: the training's).
RUN_BENCHMARK_DEFAULTS = {"trials": 5, "latency_samples": 50, "warmup": 10, "batch_size": None}


def _training(**extra):
    return Object(default={}, fields={
        "epochs": Integer(*EPOCHS, 5),
        "batch_size": Integer(*BATCH_SIZE, 64, label="batch size"),
        "optimizer": Choice(OPTIMIZERS, "adam"),
        "learning_rate": Number(*LEARNING_RATE, 0.001, label="learning rate"),
        "seed": Integer(*SEED, 0),
        **extra,
    })


class Steps(Field):
    """A recipe's steps: each checked by its technique's fields, and together."""

    def check(self, value, path, problems):
        return techniques.check_steps(value, path, problems)

    def describe(self):
        return {"type": "array", "maxItems": techniques.MAX_STEPS,
                "items": techniques.steps_schema()}


_LABEL = Text(200, OMIT, help="Filled in by the server: the upload's name.")


def _params(arch):
    """A model's parameters (null: the defaults)."""
    return Object(zoo.PARAMS[arch].fields, {}, null_default=True,
                  label=f"the {arch} parameters")

RECIPE = Object({
    "name": Text(200, OMIT, help="Unique in the experiment; the techniques joined by ' + ' "
                                 "when left out."),
    "steps": Steps(help="At least one step; the baseline is added for you."),
}, label="recipe")

SPEC = Object({
    "name": Text(200, blank=False, blank_message="Give the experiment a name."),
    "model": Tagged("arch", {
        **{arch: Object({"params": _params(arch)})
           for arch, params in zoo.PARAMS.items() if arch != "uploaded"},
        "uploaded": Object({"model_id": Integer(*ID, None, nullable=True,
                                                help="An uploaded model's id."),
                            "params": _params("uploaded"), "label": _LABEL}),
    }, label="model"),
    "dataset": Tagged("name", {
        **data.DATASETS,
        "npz": Object({"dataset_id": Integer(*ID, None, nullable=True,
                                             help="An uploaded dataset's id."),
                       "label": _LABEL, **data.SUBSET}),
    }, {"name": "digits"}, default_tag="digits", label="dataset"),
    "training": _training(repeats=Integer(*REPEATS, 1, help="Replicates of every run; "
                                                            "replicate i trains with seed + i.")),
    "hardware": Choice(HARDWARE, "cpu"),
    "gpu_model": Text(200, OMIT, blank=False, label="GPU model", null_default=True,
                      help="Only with hardware gpu."),
    "accuracy_budget": Number(*ACCURACY_BUDGET, 0.01, label="accuracy budget",
                              help="The largest test-accuracy drop (a fraction: 0.01 is 1 "
                                   "percentage point) a recipe may cost and still be signed "
                                   "off, judged on the point estimate."),
    "recipes": ListOf(RECIPE, [], max_items=MAX_RECIPES, each=True),
    "benchmark": Object({key: Integer(*bounds, OMIT) for key, bounds in
                         BENCHMARK_LIMITS.items()}, OMIT),
})

ENGINE_SPEC = Object({
    "name": Text(200, ""),
    "model": Tagged("arch", {
        **{arch: Object({"params": _params(arch)})
           for arch, params in zoo.PARAMS.items() if arch != "uploaded"},
        "uploaded": Object({"path": Text(4096, blank=False), "params": _params("uploaded")}),
    }, label="model"),
    "dataset": data.DATASET,
    "training": _training(),
    "hardware": SPEC.fields["hardware"],
    "gpu_model": SPEC.fields["gpu_model"],
    "accuracy_budget": SPEC.fields["accuracy_budget"],
    "steps": Steps([]),
    "benchmark": Object({
        **{key: Integer(*BENCHMARK_LIMITS[key], RUN_BENCHMARK_DEFAULTS[key])
           for key in RUN_BENCHMARK_KEYS},
        "batch_size": Integer(*BATCH_SIZE, None, nullable=True, label="batch size"),
    }, RUN_BENCHMARK_DEFAULTS),
})


def json_schema():
    """The JSON Schema of a spec as a user submits it."""
    return SPEC.json_schema()


def check_spec(raw, *, lookup=None, max_params=None, dataset_dir=None):
    """A spec as a user submits it, checked and normalized (defaults and labels filled in);
    Invalid with messages keyed by spec path otherwise. Uploads are looked up through
    ``lookup`` (see the module's docstring); without one, none is found. ``max_params``
    bounds a model's parameter count. A public dataset's files must be in ``dataset_dir``
    (public.default_dir() when None): a run never downloads them."""
    problems = Problems()
    spec = _sections(raw, SPEC, problems)
    description = _dataset(spec, lookup, problems, dataset_dir)
    facts = _model(spec, description, lookup, max_params, problems)
    _recipes(spec, facts, problems)
    _training_rules(spec, description, problems)
    _hardware_rules(spec, problems)
    problems.raise_if_any()
    return spec


def check_engine_spec(raw):
    """A runner's spec checked and normalized; Invalid (a ValueError) otherwise."""
    problems = Problems()
    spec = _sections(raw, ENGINE_SPEC, problems)
    if spec.get("dataset", INVALID) is not INVALID:
        data.check_dataset(spec["dataset"], "dataset", problems, data.DATASET)
    model = spec.get("model", INVALID)
    if model is not INVALID and model["arch"] == "uploaded" and not os.path.isabs(model["path"]):
        problems.add("model.path", "The path of an uploaded model must be absolute.")
    problems.raise_if_any()
    benchmark = spec["benchmark"]
    benchmark["batch_size"] = benchmark["batch_size"] or spec["training"]["batch_size"]
    return spec


def _sections(raw, schema, problems):
    """Each top-level section cleaned on its own, so that one bad section does not hide the
    messages of the others; INVALID in place of a bad one. Raises Invalid at once for what
    no check should see: bad text, NaN, deep nesting, a spec that is not an object."""
    if not isinstance(raw, dict):
        raise Invalid({"spec": ["The spec must be a JSON object."]})
    found = plain_json_problems(raw)
    if found:
        raise Invalid(found)
    spec = {}
    for key in raw:
        if key not in schema.fields:
            problems.add(key if len(key) <= 40 else "spec",
                         f"Unknown setting {shown(key)}{did_you_mean(key, schema.fields)}; "
                         f"a spec takes {', '.join(schema.fields)}.")
    for key, field in schema.fields.items():
        if key in raw and not (raw[key] is None and field.null_default):
            spec[key] = field.clean(copy.deepcopy(raw[key]), key, problems)
        elif field.default is OMIT:
            continue
        elif field.required:
            problems.add(key, f"'{key}' is required.")
            spec[key] = INVALID
        else:
            spec[key] = field.clean(copy.deepcopy(field.default), key, problems)
    return spec


def _dataset(spec, lookup, problems, dataset_dir):
    """The dataset's description (shapes, classes, sizes), or None where it is unusable."""
    dataset = spec["dataset"]
    if dataset is INVALID:
        return None
    try:
        if dataset["name"] == "npz":
            pk = dataset["dataset_id"]
            found = lookup.dataset(pk) if lookup and pk is not None else None
            if found is None:
                problems.add("dataset.dataset_id",
                             "Choose one of your team's uploaded datasets.")
                return None
            dataset["label"] = found["label"]
            return data.with_subset(found, dataset)
        if data.check_dataset(dataset, "dataset", problems, SPEC.fields["dataset"]) is INVALID:
            return None
        if dataset["name"] in public.PUBLIC:
            missing = public.missing_message(dataset["name"],
                                             dataset_dir or public.default_dir())
            if missing:
                problems.add("dataset.name", missing)
                return None
        return data.describe(dataset)
    except Invalid as exc:
        for path, messages in exc.messages.items():
            for message in messages:
                problems.add(path, message)
        return None


def _model(spec, description, lookup, max_params, problems):
    """The model's ModelFacts, or None where the model is unusable or unknown."""
    model = spec["model"]
    if model is INVALID:
        return None
    if model["arch"] == "uploaded":
        return _uploaded(model, description, lookup, max_params, problems)
    arch, params = model["arch"], model["params"]
    if description is not None:
        try:
            zoo.check_input_shape(arch, params, description["input_shape"])
        except ValueError as exc:
            problems.add("model.arch", str(exc))
            return None
        count = zoo.count_params(arch, params, description["input_shape"],
                                 description["num_classes"])
        if max_params is not None and count > max_params:
            problems.add("model.params", f"This model has {count:,} parameters; the limit is "
                                         f"{max_params:,}. Make it narrower or shallower.")
    return techniques.ModelFacts(**zoo.facts(arch, params))


def _uploaded(model, description, lookup, max_params, problems):
    pk = model["model_id"]
    found = lookup.model(pk) if lookup and pk is not None else None
    if found is None:
        problems.add("model.model_id", "Choose one of your team's uploaded models.")
        return None
    name = found["label"]
    model["label"] = name
    if max_params is not None and found["params"] > max_params:
        problems.add("model.model_id", f"“{name}” has {found['params']:,} parameters; the "
                                       f"limit is {max_params:,}.")
    if description is not None:
        data_shape = list(description["input_shape"])
        if list(found["input_shape"]) != data_shape:
            problems.add("model.model_id", f"“{name}” takes samples of shape "
                         f"{_shape(found['input_shape'])}, but this dataset's samples have "
                         f"shape {_shape(data_shape)}.")
        if found["num_classes"] != description["num_classes"]:
            problems.add("model.model_id", f"“{name}” has {found['num_classes']} output "
                         f"units, but this dataset has {description['num_classes']} classes.")
    if not found.get("facts"):
        return None  # checked before layer inventories were kept: the run will tell
    return techniques.ModelFacts(**{**found["facts"], "arch": f"“{name}”"})


def _shape(shape):
    return "x".join(str(side) for side in shape)


def _recipes(spec, facts, problems):
    recipes = spec["recipes"]
    if recipes is INVALID:
        return
    names = set()
    for index, recipe in enumerate(recipes):
        path = f"recipes.{index}"
        if recipe is INVALID:
            continue  # its own messages say why; an empty recipe is not one of them
        if not recipe["steps"]:
            problems.add(path, "A recipe needs at least one step (the baseline is added for "
                               "you).")
            continue
        name = recipe.get("name") or " + ".join(step["technique"] for step in recipe["steps"])
        if name.lower() == "baseline" or name in names:
            problems.add(path, f"Recipe name '{name}' is used twice (or is 'baseline').")
        names.add(name)
        recipe["name"] = name[:200]
        if facts is not None:
            techniques.check_applicable(recipe["steps"], f"{path}.steps", problems, facts)


def _training_rules(spec, description, problems):
    training = spec["training"]
    if training is INVALID:
        return
    if training["seed"] + training["repeats"] - 1 > SEED[1]:
        # Replicate i trains with seed + i.
        problems.add("training.seed", f"With {training['repeats']} repeats the seed must be "
                                      f"at most {SEED[1] - training['repeats'] + 1:,}.")
    if description and training["batch_size"] > description["train_samples"]:
        problems.add("training.batch_size",
                     f"Batch size {training['batch_size']:,} is larger than the "
                     f"{description['train_samples']:,} training samples of this dataset.")


def _hardware_rules(spec, problems):
    if "gpu_model" in spec and spec["gpu_model"] is not INVALID and spec["hardware"] != "gpu":
        problems.add("hardware", "A GPU model can be chosen only with hardware gpu.")
