"""One run: load data, build, train, apply the recipe's steps, evaluate, benchmark, report.

Meant for a process of its own (``python -m runners run``): steps set process-wide state such
as Keras's global dtype policy, and device visibility is fixed when the framework loads.
"""

import copy
import os
import statistics
import tempfile
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field

from runners.engine import advisor, events, measure, schema, zoo
from runners.engine import data as datasets
from runners.engine.events import EngineError
from runners.engine.fingerprint import fingerprint
from runners.engine.techniques import build_steps


class Cancelled(Exception):
    """SIGTERM arrived; the run stops at the next batch or phase boundary."""


class CancelFlag:
    requested = False

    def request(self, *_):
        # Called from a signal handler: only set a flag, act on it at a safe point.
        self.requested = True

    def check(self):
        if self.requested:
            raise Cancelled


@dataclass
class RunContext:
    """What steps see and may change; ``runtime`` is the artifact that gets measured.

    ``training`` is a copy of the spec's training settings that steps may change in
    ``configure`` (large_batch scales batch_size and learning_rate); the run trains with it.
    ``model`` may be replaced in ``after_train`` (stripping wrappers): unless a step sets
    ``runtime``, the Keras runtime is made from ``model`` after every ``after_train`` ran.
    """

    spec: dict
    backend: str
    data: datasets.Dataset
    workdir: str
    training: dict = None
    model: object = None
    epochs: list = field(default_factory=list)
    train_samples_per_s: float = None
    runtime: object = None
    reference: object = None
    compile_seconds: float = None
    notes: list = field(default_factory=list)
    artifacts: list = field(default_factory=list)
    # Costs paid once to ship the recipe (compilation, conversion, fine-tuning epochs):
    # {"what", "seconds", "pays_back": "inference" | "training", "less_baseline": key}.
    one_time_costs: list = field(default_factory=list)

    def add_one_time_cost(self, what, seconds, *, pays_back="inference", less_baseline=None):
        if seconds is not None:
            self.one_time_costs.append({"what": what, "seconds": float(seconds),
                                        "pays_back": pays_back,
                                        "less_baseline": less_baseline})

    def write_artifact(self, name, content):
        path = os.path.join(self.workdir, name)
        with open(path, "wb") as f:
            f.write(content)
        self.artifacts.append(name)
        return path

    def save_model(self, model, name):
        """Save a Keras model as an artifact, architecture and weights without optimizer slots.

        Keras 3 saves a compiled model's optimizer state (Adam keeps two slots per weight, and
        a LossScaleOptimizer more), which would triple model_bytes for a file nobody ships.
        """
        path = os.path.join(self.workdir, name)
        if getattr(model, "optimizer", None) is None:
            # Never compiled (a quantized copy): nothing to leave out, and quantized layers
            # (float8's scale variables) do not survive a from_config rebuild.
            model.save(path)
        else:
            # clone_model would compile the clone again, optimizer included; from_config not.
            clone = model.__class__.from_config(model.get_config())
            clone.set_weights(model.get_weights())
            clone.save(path)
        self.artifacts.append(name)
        return path


def validate_spec(spec):
    """The engine spec with defaults filled in; ValueError with a readable message otherwise
    (runners.engine.schema's, the same rules the web's doors apply)."""
    return schema.check_engine_spec(spec)


def execute(spec, artifacts_dir=None, cancel=None):
    """Run a spec, emitting events; raises Cancelled, EngineError or whatever broke."""
    spec = validate_spec(spec)
    cancel = cancel or CancelFlag()
    steps = build_steps(spec["steps"])
    if artifacts_dir:
        os.makedirs(artifacts_dir, exist_ok=True)
    holder = nullcontext(artifacts_dir) if artifacts_dir else tempfile.TemporaryDirectory()
    with holder as workdir:
        return _execute(spec, steps, workdir, bool(artifacts_dir), cancel)


def _execute(spec, steps, workdir, keep_artifacts, cancel):
    training, bench = spec["training"], spec["benchmark"]
    events.phase("load_data")
    data = datasets.load(spec["dataset"], training["seed"])
    cancel.check()

    events.phase("build")
    keras = _import_keras(spec["hardware"])
    backend = keras.backend.backend()
    ctx = RunContext(spec=spec, backend=backend, data=data, workdir=workdir,
                     training=copy.deepcopy(training))
    # Steps configure before anything touches a device: logical CPU devices and thread pools
    # can only be set before TensorFlow initialises its runtime.
    for step in steps:
        step.configure(ctx)
    devices = _devices(backend, spec["hardware"])
    keras.utils.set_random_seed(training["seed"])
    training = ctx.training
    with ExitStack() as scopes:
        # Build, compile and fit inside every step's scope (a distribution strategy's scope
        # must be active when variables are created and when the model compiles).
        for step in steps:
            scope = step.scope(ctx)
            if scope is not None:
                scopes.enter_context(scope)
        model = zoo.build_model(spec["model"], data.input_shape, data.num_classes)
        for step in steps:
            model = step.transform_model(ctx, model)
        ctx.model = model
        optimizer = _optimizer(keras, training)
        for step in steps:
            optimizer = step.make_optimizer(ctx, optimizer)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            **_compile_options(steps, ctx),
        )
        events.emit(
            "start", epochs=training["epochs"], train_samples=len(data.x_train),
            validation_samples=len(data.x_val), test_samples=len(data.x_test),
            params=model.count_params(), input_shape=data.input_shape,
            num_classes=data.num_classes, backend=backend, steps=[s.technique for s in steps],
        )
        cancel.check()

        events.phase("train")
        epochs, train_seconds = _train(keras, ctx, steps, cancel)
    cancel.check()
    ctx.epochs = epochs
    train_figures = _training_figures(epochs, train_seconds, len(data.x_train))
    ctx.train_samples_per_s = train_figures["train_samples_per_s"]
    ctx.compile_seconds = train_figures["compile_seconds"]
    for step in steps:
        step.after_train(ctx)
        cancel.check()
    model = ctx.model
    model_path = os.path.join(workdir, "model.keras")
    if "model.keras" not in ctx.artifacts:
        ctx.save_model(model, "model.keras")
    if ctx.runtime is None:
        ctx.runtime = measure.KerasRuntime(model, model_path)

    events.phase("evaluate")
    measured = {"runtime": {}, "reference": {}}
    for role, runtime in _runtimes(ctx):
        measured[role]["test_accuracy"] = measure.accuracy(
            runtime, data.x_test, data.y_test, bench["batch_size"])
    cancel.check()

    events.phase("benchmark")
    for role, runtime in _runtimes(ctx):
        measured[role].update(measure.latency(
            runtime, data.x_test, trials=bench["trials"], samples=bench["latency_samples"],
            warmup=bench["warmup"]))
        measured[role].update(measure.throughput(
            runtime, data.x_test, batch_size=bench["batch_size"], trials=bench["trials"],
            warmup=bench["warmup"]))
        measured[role]["model_bytes"], measured[role]["model_gzip_bytes"] = \
            measure.file_sizes(runtime.path)
        cancel.check()

    ctx.notes.extend(_notes(ctx, epochs))
    params = model.count_params()
    fields = _result_fields(steps, ctx)
    found = fingerprint(backend)
    events.emit(
        "result",
        **measured["runtime"],
        **train_figures,
        params=params,
        sparsity=measure.sparsity(model),
        runtime=ctx.runtime.runtime,
        reference=measured["reference"] or None,
        # What the benchmark stage loads: the shipped file and the reference beside it.
        measured_files={role: {"file": os.path.basename(runtime.path),
                               "runtime": runtime.runtime,
                               "jit_compile": bool(getattr(runtime, "jit", False))}
                        for role, runtime in _runtimes(ctx)},
        fingerprint=found,
        devices=devices,
        steps_applied=[s.technique for s in steps],
        notes=ctx.notes,
        backend=backend,
        epochs_run=len(epochs),
        test_samples=len(data.x_test),
        benchmark=bench,
        artifacts=ctx.artifacts if keep_artifacts else None,
        training=ctx.training,
        one_time_costs=ctx.one_time_costs,
        advice=advisor.advise(spec["steps"], {**found, "hardware": spec["hardware"]},
                              params=params),
        **fields,
    )


def _result_fields(steps, ctx):
    fields = {}
    for step in steps:
        fields.update(step.result_fields(ctx))
    return fields


def _runtimes(ctx):
    yield "runtime", ctx.runtime
    if ctx.reference is not None:
        yield "reference", ctx.reference


def _train(keras, ctx, steps, cancel):
    model, data, training = ctx.model, ctx.data, ctx.training
    epochs = []

    class EpochEvents(keras.callbacks.Callback):
        """Streams one event per finished epoch and turns SIGTERM into stop_training."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.batches_done = None
            self.steps = 0

        def on_test_begin(self, logs=None):
            # Validation runs inside the epoch; the train-only time excludes it.
            self.batches_done = self.batches_done or time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if cancel.requested:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if cancel.requested:
                return  # an interrupted epoch's numbers would be mislabelled as complete
            now = time.perf_counter()
            logs = logs or {}
            record = {
                "epoch": epoch + 1,
                "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"),
                "val_loss": logs.get("val_loss"),
                "val_accuracy": logs.get("val_accuracy"),
                "seconds": now - self.started,
                "train_seconds": (self.batches_done or now) - self.started,
                "steps": self.steps,
            }
            epochs.append(record)
            events.emit("epoch", **record)

    options = {
        "x": data.x_train, "y": data.y_train,
        "validation_data": (data.x_val, data.y_val),
        "epochs": training["epochs"], "batch_size": training["batch_size"],
        "shuffle": True, "verbose": 0, "callbacks": [EpochEvents()],
    }
    for step in steps:
        options = step.fit_options(ctx, options)
    for step in steps:
        options["callbacks"] = [*options["callbacks"], *step.callbacks(ctx)]
    started = time.perf_counter()
    model.fit(**options)
    return epochs, time.perf_counter() - started


def _training_figures(epochs, train_seconds, samples):
    """compile_seconds and throughput from per-epoch train-only times.

    The first epoch carries one-off costs (tracing, XLA compilation, allocator warm-up);
    its excess over a typical later epoch estimates them, and throughput leaves it out.
    """
    times = [e["train_seconds"] for e in epochs]
    compile_seconds = max(0.0, times[0] - statistics.median(times[1:])) \
        if len(times) >= 2 else None
    return {
        "train_seconds": train_seconds,
        "compile_seconds": compile_seconds,
        **measure.train_throughput(epochs, samples),
    }


def _notes(ctx, epochs):
    notes = [
        "compile_seconds is the first epoch minus the median later epoch: it includes "
        "warm-up (tracing, allocation), not only compilation; train_samples_per_s is the "
        "median of the later epochs' train-only throughput"
        if len(epochs) >= 2 else
        "one epoch only: compile_seconds unknown and train_samples_per_s includes warm-up",
    ]
    for role, runtime in _runtimes(ctx):
        if runtime.runtime == "keras":
            notes.append(f"keras {role} latency via {runtime.how}")
    return notes


def _compile_options(steps, ctx):
    # Explicitly off: Keras's "auto" enables XLA on GPUs and under JAX, which would make the
    # baseline an XLA run and the xla recipe a comparison with itself.
    options = {"jit_compile": False}
    owners = {}
    for step in steps:
        for key, value in step.compile_options(ctx).items():
            if key in owners and options[key] != value:
                raise EngineError(
                    f"{owners[key]} and {step.technique} set compile option {key} differently"
                )
            owners[key], options[key] = step.technique, value
    return options


def _optimizer(keras, training):
    cls = {
        "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
    }[training["optimizer"]]
    return cls(learning_rate=training["learning_rate"])


def _import_keras(hardware):
    if hardware == "cpu":
        # Device visibility is read once, when the framework initialises.
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"
    import keras

    return keras


def _devices(backend, hardware):
    if backend == "tensorflow":
        import tensorflow as tf

        found = [d.name for d in tf.config.list_logical_devices()]
    elif backend == "jax":
        import jax

        found = [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]
    else:
        found = []
    if hardware == "gpu" and not any("gpu" in d.lower() or "cuda" in d.lower() for d in found):
        raise EngineError(f"hardware gpu was requested but the {backend} backend sees no GPU")
    return found
