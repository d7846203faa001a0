"""The experiment spec at the web's doors: runners.engine.schema checks it, with the team's
uploads looked up here, and the engine's and the benchmark stage's inputs are made from it.

`validate_spec` is the single gate of the form, the API, `manage.py submit` and the recipe
library. It returns a normalized copy (defaults filled in) or raises ValidationError with
messages keyed by the spec path ("training.epochs"), so the form can put each message next
to its field and the CLI can print it.
"""

import copy

from django.conf import settings
from django.core.exceptions import ValidationError

from runners.engine import public, schema
from runners.engine.fields import Invalid
from runners.engine.schema import RUN_BENCHMARK_KEYS, STAGE_DEFAULTS
from runners.engine.techniques import jit_compiled


class TeamUploads:
    """The team's uploads, as runners.engine.schema.check_spec looks them up."""

    def __init__(self, team):
        self.team = team

    def dataset(self, pk):
        from .models import Dataset

        found = Dataset.objects.filter(pk=pk, team=self.team).first() if self.team else None
        if found is None:
            return None
        return {"label": found.name, "input_shape": list(found.input_shape),
                "num_classes": found.num_classes, "train_samples": found.train_samples,
                "test_samples": found.test_samples}

    def model(self, pk):
        from .models import UploadedModel

        found = UploadedModel.objects.filter(pk=pk, team=self.team).first() if self.team \
            else None
        if found is None:
            return None
        return {"label": found.name, "input_shape": list(found.input_shape),
                "num_classes": found.num_classes, "params": found.params,
                "facts": found.facts}


def validate_spec(raw, *, team=None) -> dict:
    """Check a spec for a team and return its normalized copy; ValidationError with
    messages keyed by spec path ("training.epochs") otherwise."""
    try:
        return schema.check_spec(raw, lookup=TeamUploads(team),
                                 max_params=settings.ACCELWEB_MAX_PARAMS,
                                 dataset_dir=str(settings.ACCELWEB_DATASET_DIR))
    except Invalid as exc:
        raise ValidationError(exc.messages) from None


def engine_spec(spec: dict, steps: list, *, dataset_path: str | None = None,
                model_path: str | None = None, replicate: int = 0) -> dict:
    """The engine's input: the spec with one recipe's steps in place of the recipes, and
    uploaded files (a .npz, a .keras) named by their paths instead of their ids.
    Replicate i trains with seed + i."""
    # Only what the engine takes: a spec stored before the schema refused unknown keys may
    # carry others ("description", a training "epoch"), and its runs must still re-run.
    engine = schema.ENGINE_SPEC.fields
    out = {key: copy.deepcopy(value) for key, value in spec.items()
           if key in engine and value is not None}
    out["steps"] = copy.deepcopy(steps)
    out["training"] = {key: value for key, value in (spec.get("training") or {}).items()
                       if key in engine["training"].fields}
    out["training"]["seed"] = out["training"].get("seed", 0) + replicate
    model = spec.get("model") or {}
    if model.get("arch") != "uploaded":
        out["model"] = {"arch": model.get("arch"), "params": model.get("params") or {}}
    if "benchmark" in out:
        out["benchmark"] = {key: value for key, value in out["benchmark"].items()
                            if key in RUN_BENCHMARK_KEYS}
    out["dataset"] = _engine_dataset(spec, dataset_path)
    if model_path is not None:
        out["model"] = {"arch": "uploaded", "path": model_path}
    return out


def _engine_dataset(spec, dataset_path):
    given = spec.get("dataset", {"name": "digits"})
    subset = {key: given[key] for key in ("train_samples", "test_samples") if key in given}
    if dataset_path is not None:
        return {"name": "npz", "path": dataset_path, **subset}
    out = copy.deepcopy(given)
    if out.get("name") in public.PUBLIC:
        # The runner reads the files from the directory the web checked them in.
        out["directory"] = str(settings.ACCELWEB_DATASET_DIR)
    return out


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
    jit = jit_compiled(step.get("technique") for step in run.steps)
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
