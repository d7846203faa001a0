"""The experiment spec: one contract for the form, the API, the CLI and the engine.

`validate_spec` is the single gate. It returns a normalized copy (defaults filled in) or
raises ValidationError with messages keyed by the spec path ("training.epochs"), so the
form can put each message next to its field and the CLI can print it.
"""

import copy
import math

from django.conf import settings
from django.core.exceptions import ValidationError

from runners.engine import data as engine_data
from runners.engine import steps as engine_steps
from runners.engine import zoo

EPOCHS = (1, 500)
BATCH_SIZE = (1, 65_536)
LEARNING_RATE = (1e-7, 10.0)
SEED = (0, 2**31 - 1)
OPTIMIZERS = ["adam", "sgd", "rmsprop", "adamw"]
HARDWARE = ["cpu", "gpu"]
MAX_RECIPES = 20
SYNTHETIC_SAMPLES = (100, 200_000)
SYNTHETIC_SIDE = (1, 512)
SYNTHETIC_CLASSES = (2, 1000)
ACCURACY_BUDGET = (0.0, 1.0)
REPEATS = (1, 10)
# trials, latency_samples: each run's own measurement, right after it trained (the figures
# of its result). executions, rounds, calls: the benchmark stage, which measures every
# run's model side by side and gives the speedups; warmup is for both.
BENCHMARK_LIMITS = {"trials": (1, 50), "latency_samples": (1, 10_000), "warmup": (0, 1000),
                    "executions": (2, 20), "rounds": (2, 200), "calls": (1, 1000)}
STAGE_DEFAULTS = {"executions": 5, "rounds": 20, "calls": 20, "warmup": 20}
RUN_BENCHMARK_KEYS = ("trials", "latency_samples", "warmup")

# Bounds of the zoo's parameters; the engine fills defaults, the web refuses nonsense.
MODEL_PARAM_LIMITS = {
    "units": (1, 4096),
    "filters": (1, 1024),
    "dense": (1, 8192),
    "dropout": (0.0, 0.9),
    "depth": (1, 50),
    "width": (1, 512),
}


class _Errors:
    def __init__(self):
        self.messages = {}

    def add(self, path, message):
        self.messages.setdefault(path, []).append(message)

    def raise_if_any(self):
        if self.messages:
            raise ValidationError(self.messages)


def _number(errors, path, value, bounds, *, integer=True, label=None):
    label = label or path.rsplit(".", 1)[-1].replace("_", " ")
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        errors.add(path, f"{label.capitalize()} must be {'an integer' if integer else 'a number'}.")
        return None
    low, high = bounds
    if not low <= value <= high:
        errors.add(
            path, f"{label.capitalize()} must be between {low:,} and {high:,} (got {value:,})."
        )
        return None
    return value


def _section(errors, spec, key):
    value = spec.get(key, {})
    if not isinstance(value, dict):
        errors.add(key, f"'{key}' must be an object.")
        return {}
    return value


def _non_finite_paths(value, path="spec"):
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_paths(item, key if path == "spec" else f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_paths(item, f"{path}.{index}")


def _bad_text_paths(value, path="spec"):
    """Paths of strings (and keys) no database column stores: a NUL or a lone surrogate
    ("\\ud800" parses from JSON text but cannot be encoded as UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value or not _encodes(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            where = key if path == "spec" else f"{path}.{key}"
            if isinstance(key, str) and ("\x00" in key or not _encodes(key)):
                yield path
            else:
                yield from _bad_text_paths(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_text_paths(item, f"{path}.{index}")


def _encodes(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_spec(raw, *, team=None) -> dict:
    """Check a spec for a team and return its normalized copy."""
    errors = _Errors()
    if not isinstance(raw, dict):
        raise ValidationError({"spec": ["The spec must be a JSON object."]})
    spec = copy.deepcopy(raw)
    # NaN and Infinity parse from JSON text (Python's json does) but no JSON column stores
    # them, and a key the spec keeps unchecked would carry them to the database.
    for path in _non_finite_paths(spec):
        errors.add(path, "Numbers must be finite (not NaN or Infinity).")
    for path in _bad_text_paths(spec):
        errors.add(path, "Text cannot contain NUL characters or lone surrogates "
                         "(invalid Unicode).")
    if errors.messages:
        errors.raise_if_any()  # the checks below would store or compare the bad text

    name = spec.get("name", "")
    if not isinstance(name, str) or not name.strip():
        errors.add("name", "Give the experiment a name.")
    elif len(name) > 200:
        errors.add("name", "The name is longer than 200 characters.")
    else:
        spec["name"] = name.strip()

    training = _section(errors, spec, "training")
    training.setdefault("epochs", 5)
    training.setdefault("batch_size", 64)
    training.setdefault("optimizer", "adam")
    training.setdefault("learning_rate", 0.001)
    training.setdefault("seed", 0)
    training.setdefault("repeats", 1)
    _number(errors, "training.epochs", training["epochs"], EPOCHS)
    if _number(errors, "training.repeats", training["repeats"], REPEATS, label="repeats") \
            and isinstance(training["seed"], int) and not isinstance(training["seed"], bool) \
            and training["seed"] + training["repeats"] - 1 > SEED[1]:
        # Replicate i trains with seed + i.
        errors.add("training.seed", f"With {training['repeats']} repeats the seed must be at "
                                    f"most {SEED[1] - training['repeats'] + 1:,}.")
    _number(errors, "training.batch_size", training["batch_size"], BATCH_SIZE, label="batch size")
    _number(errors, "training.learning_rate", training["learning_rate"], LEARNING_RATE,
            integer=False, label="learning rate")
    _number(errors, "training.seed", training["seed"], SEED)
    if training["optimizer"] not in OPTIMIZERS:
        errors.add("training.optimizer", f"Optimizer must be one of {', '.join(OPTIMIZERS)}.")
    spec["training"] = training

    spec.setdefault("hardware", "cpu")
    if spec["hardware"] not in HARDWARE:
        errors.add("hardware", f"Hardware must be one of {', '.join(HARDWARE)}.")
    gpu_model = spec.get("gpu_model")
    if gpu_model is not None:
        if spec["hardware"] != "gpu" or not isinstance(gpu_model, str) or not gpu_model.strip():
            errors.add("hardware", "A GPU model can be chosen only with hardware gpu.")
        elif len(gpu_model) > 200:
            errors.add("hardware", "The GPU model name is longer than 200 characters.")

    # The largest test-accuracy drop (a fraction) a recipe may cost and still be signed off.
    spec.setdefault("accuracy_budget", 0.01)
    _number(errors, "accuracy_budget", spec["accuracy_budget"], ACCURACY_BUDGET,
            integer=False, label="accuracy budget")

    description = _validate_dataset(errors, spec, team)
    _validate_model(errors, spec, description, team)
    _validate_recipes(errors, spec)
    _validate_benchmark(errors, spec)

    if description and isinstance(training.get("batch_size"), int):
        if training["batch_size"] > description["train_samples"]:
            errors.add(
                "training.batch_size",
                f"Batch size {training['batch_size']:,} is larger than the "
                f"{description['train_samples']:,} training samples of this dataset.",
            )
    errors.raise_if_any()
    return spec


def _validate_dataset(errors, spec, team):
    dataset = _section(errors, spec, "dataset")
    name = dataset.get("name", "digits")
    dataset["name"] = name
    spec["dataset"] = dataset
    if name == "digits":
        pass
    elif name == "synthetic":
        dataset.setdefault("samples", 2000)
        dataset.setdefault("shape", [32, 32, 3])
        dataset.setdefault("classes", 10)
        dataset.setdefault("seed", 0)
        _number(errors, "dataset.samples", dataset["samples"], SYNTHETIC_SAMPLES)
        _number(errors, "dataset.classes", dataset["classes"], SYNTHETIC_CLASSES)
        _number(errors, "dataset.seed", dataset["seed"], SEED)
        shape = dataset["shape"]
        if not isinstance(shape, list) or len(shape) not in (1, 3):
            errors.add("dataset.shape", "Shape must be [features] or [height, width, channels].")
        else:
            for side in shape:
                _number(errors, "dataset.shape", side, SYNTHETIC_SIDE, label="each dimension")
    elif name == "npz":
        from .models import Dataset

        dataset_id = dataset.get("dataset_id")
        found = None
        if isinstance(dataset_id, int) and not isinstance(dataset_id, bool) and team is not None:
            found = Dataset.objects.filter(pk=dataset_id, team=team).first()
        if found is None:
            errors.add("dataset.dataset_id", "Choose one of your team's uploaded datasets.")
            return None
        dataset["label"] = found.name
        return {
            "input_shape": list(found.input_shape),
            "num_classes": found.num_classes,
            "train_samples": found.train_samples,
            "test_samples": found.test_samples,
        }
    else:
        errors.add("dataset.name", "Dataset must be digits, synthetic or npz.")
        return None
    if any(key.startswith("dataset.") for key in errors.messages):
        return None
    try:
        # The engine's own checks (unknown keys, more than 5 samples per class, a size
        # limit) go beyond the bounds above: refuse with its message, not an exception.
        return engine_data.describe(dataset)
    except ValueError as exc:
        errors.add("dataset", f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        return None


def _validate_model(errors, spec, description, team):
    model = _section(errors, spec, "model")
    spec["model"] = model
    arch = model.get("arch")
    if not isinstance(arch, str) or arch not in zoo.ARCHS:
        errors.add("model.arch", f"Model must be one of {', '.join(zoo.ARCHS)}.")
        return
    if arch == "uploaded":
        # Not the zoo's: nothing to build or count here; the upload check measured it.
        _validate_uploaded_model(errors, model, description, team)
        return
    params = model.get("params") or {}
    if not isinstance(params, dict):
        errors.add("model.params", "Model parameters must be an object.")
        return
    unknown = sorted(set(params) - set(zoo.ARCHS[arch]))
    if unknown:
        errors.add("model.params", f"Unknown parameter(s) for {arch}: {', '.join(unknown)}.")
        return
    params = {**zoo.ARCHS[arch], **params}
    for key, value in params.items():
        if key in MODEL_PARAM_LIMITS:
            low, high = MODEL_PARAM_LIMITS[key]
            _number(errors, f"model.params.{key}", value, (low, high),
                    integer=isinstance(low, int))
        elif key == "batch_norm" and not isinstance(value, bool):
            errors.add("model.params.batch_norm", "BatchNorm must be true or false.")
    model["params"] = params
    if description is None or any(k.startswith("model.") for k in errors.messages):
        return
    try:
        zoo.check_input_shape(arch, params, description["input_shape"])
    except ValueError as exc:
        errors.add("model.arch", str(exc))
        return
    count = zoo.count_params(arch, params, description["input_shape"], description["num_classes"])
    limit = settings.ACCELWEB_MAX_PARAMS
    if count > limit:
        errors.add(
            "model.params",
            f"This model has {count:,} parameters; the limit is {limit:,}. "
            "Make it narrower or shallower.",
        )


def _validate_uploaded_model(errors, model, description, team):
    from .models import UploadedModel

    model_id = model.get("model_id")
    found = None
    if isinstance(model_id, int) and not isinstance(model_id, bool) and team is not None:
        found = UploadedModel.objects.filter(pk=model_id, team=team).first()
    if found is None:
        errors.add("model.model_id", "Choose one of your team's uploaded models.")
        return
    if model.get("params"):
        errors.add("model.params", "An uploaded model takes no parameters.")
        return
    unknown = sorted(set(model) - {"arch", "model_id", "params", "label"})
    if unknown:
        errors.add("model", f"Unknown model setting(s): {', '.join(unknown)}.")
        return
    model["params"] = {}
    model["label"] = found.name
    if found.params > settings.ACCELWEB_MAX_PARAMS:
        errors.add("model.model_id", f"“{found.name}” has {found.params:,} parameters; the "
                                     f"limit is {settings.ACCELWEB_MAX_PARAMS:,}.")
    if description is None:
        return
    data_shape = list(description["input_shape"])
    if list(found.input_shape) != data_shape:
        errors.add(
            "model.model_id",
            f"“{found.name}” takes samples of shape {found.shape_label}, but this dataset's "
            f"samples have shape {'x'.join(str(d) for d in data_shape)}.",
        )
    if found.num_classes != description["num_classes"]:
        errors.add(
            "model.model_id",
            f"“{found.name}” has {found.num_classes} output units, but this dataset has "
            f"{description['num_classes']} classes.",
        )


def _validate_recipes(errors, spec):
    recipes = spec.get("recipes", [])
    if not isinstance(recipes, list):
        errors.add("recipes", "Recipes must be a list.")
        return
    if len(recipes) > MAX_RECIPES:
        errors.add("recipes", f"At most {MAX_RECIPES} recipes per experiment.")
        return
    names = set()
    normalized = []
    for index, recipe in enumerate(recipes):
        path = f"recipes.{index}"
        if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list):
            errors.add(path, "Each recipe needs a name and a list of steps.")
            continue
        steps = []
        for step in recipe["steps"]:
            try:
                steps.append(engine_steps.validate_step(step))
            except ValueError as exc:
                errors.add(path, str(exc))
        if not steps:
            errors.add(path, "A recipe needs at least one step (the baseline is added for you).")
        name = str(recipe.get("name") or " + ".join(s["technique"] for s in steps)).strip()
        if name.lower() == "baseline" or name in names:
            errors.add(path, f"Recipe name '{name}' is used twice (or is 'baseline').")
        names.add(name)
        normalized.append({"name": name[:200], "steps": steps})
    spec["recipes"] = normalized


def _validate_benchmark(errors, spec):
    benchmark = _section(errors, spec, "benchmark")
    for key, bounds in BENCHMARK_LIMITS.items():
        if key in benchmark:
            _number(errors, f"benchmark.{key}", benchmark[key], bounds)
    unknown = sorted(set(benchmark) - set(BENCHMARK_LIMITS))
    if unknown:
        errors.add("benchmark", f"Unknown benchmark setting(s): {', '.join(unknown)}.")
    if benchmark:
        spec["benchmark"] = benchmark
    else:
        spec.pop("benchmark", None)


def engine_spec(spec: dict, steps: list, *, dataset_path: str | None = None,
                model_path: str | None = None, replicate: int = 0) -> dict:
    """The engine's input: the spec with one recipe's steps in place of the recipes, and
    uploaded files (a .npz, a .keras) named by their paths instead of their ids.
    Replicate i trains with seed + i."""
    out = {key: copy.deepcopy(value) for key, value in spec.items() if key != "recipes"}
    out["steps"] = copy.deepcopy(steps)
    training = out.setdefault("training", {})
    training.pop("repeats", None)
    training["seed"] = training.get("seed", 0) + replicate
    if "benchmark" in out:
        out["benchmark"] = {key: value for key, value in out["benchmark"].items()
                            if key in RUN_BENCHMARK_KEYS}
    out["dataset"] = _engine_dataset(spec, dataset_path)
    if model_path is not None:
        out["model"] = {"arch": "uploaded", "path": model_path}
    return out


def _engine_dataset(spec, dataset_path):
    if dataset_path is not None:
        return {"name": "npz", "path": dataset_path}
    return copy.deepcopy(spec.get("dataset", {"name": "digits"}))


def benchmark_settings(spec: dict) -> dict:
    """The benchmark stage's executions, rounds, batch-1 calls per block and warm-up."""
    given = spec.get("benchmark") or {}
    return {key: given.get(key, default) for key, default in STAGE_DEFAULTS.items()}


def _shipped_files(run) -> dict:
    """{"runtime": {...}, "reference": {...}} of a run's result: the files the benchmark
    loads. Results of engines older than the benchmark stage name them by runtime only."""
    result = run.result or {}
    files = result.get("measured_files")
    if files:
        return files
    names = result.get("artifacts") or []
    if result.get("runtime") == "tflite":
        shipped = next((n for n in names if n.endswith(".tflite")
                        and n != "model_float32.tflite"), None)
        files = {"runtime": {"file": shipped, "runtime": "tflite"}}
        if "model_float32.tflite" in names:
            files["reference"] = {"file": "model_float32.tflite", "runtime": "tflite"}
        return files
    jit = any(step.get("technique") == "xla" for step in run.steps)
    return {"runtime": {"file": "model.keras", "runtime": "keras", "jit_compile": jit}}


def benchmark_spec(spec: dict, *, runs: list, dataset_path: str | None = None) -> dict:
    """The benchmark stage's input (runners.engine.bench): every run's shipped model, the
    float32 reference of a quantized one, and the baseline's model twice (the A/A control),
    with the pairs to compare. ValueError when a file is gone."""
    from .comparison import AA_PAIR, pair_ids

    models, pairs = [], []

    def add(model_id, run, role):
        described = _shipped_files(run).get(role)
        if not described or not described.get("file"):
            return False
        path = run.artifacts_dir / described["file"]
        if not path.is_file():
            raise ValueError(f"The model file of “{run.label}” ({described['file']}) is no "
                             "longer on disk: re-run it.")
        models.append({"id": model_id, "path": str(path), "runtime": described["runtime"],
                       "jit_compile": bool(described.get("jit_compile"))})
        return True

    baseline = next((run for run in runs if run.is_baseline), None)
    if baseline is None:
        raise ValueError("The baseline has no result to benchmark against.")
    add("baseline", baseline, "runtime")
    add("baseline-again", baseline, "runtime")
    pairs.append({"id": AA_PAIR, "slow": "baseline", "fast": "baseline-again"})
    for run in runs:
        if run.is_baseline:
            continue
        ids = pair_ids(run.pk)
        shipped, reference = f"run-{run.pk}", f"run-{run.pk}-reference"
        if not add(shipped, run, "runtime"):
            continue
        pairs.append({"id": ids["vs baseline"], "slow": "baseline", "fast": shipped})
        if add(reference, run, "reference"):
            pairs.append({"id": ids["vs float32 TFLite"], "slow": reference, "fast": shipped})
            if models[-1]["runtime"] == "tflite":
                pairs.append({"id": ids["runtime switch"], "slow": "baseline",
                              "fast": reference})
    stage = benchmark_settings(spec)
    return {
        "name": spec.get("name", ""),
        "models": models,
        "pairs": pairs,
        "dataset": _engine_dataset(spec, dataset_path),
        "seed": (spec.get("training") or {}).get("seed", 0),
        "hardware": spec.get("hardware", "cpu"),
        "batch_size": (spec.get("training") or {}).get("batch_size", 64),
        **stage,
    }
