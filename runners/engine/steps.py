"""Acceleration techniques as small step objects, registered by name (like Keras callbacks).

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

Every hook of the base class does nothing, so a step overrides only the stages it uses.

Parameters are plain JSON values checked by ``validate_step`` without importing a framework,
so the web process validates recipes with the same rules the engine applies.
"""

import time
from dataclasses import dataclass

import numpy as np

from runners.engine import events, fields
from runners.engine.events import EngineError
from runners.engine.fields import Boolean, Choice, Integer, ListOf, Number, Text

TECHNIQUES = {}
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
MAX_STEPS = 16


def register(cls):
    for key, field in cls.fields.items():
        # "The pruning target_sparsity must be at least 0 and below 1 (got 2)."
        field.label = field.label or f"the {cls.technique} {key}"
    cls.defaults = fields.Object(cls.fields).defaults
    TECHNIQUES[cls.technique] = cls
    return cls


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
    technique = ""
    # parameter -> fields.Field (its type, bounds and default); other parameters are refused.
    fields = {}
    # technique -> why it cannot share a recipe with this one.
    conflicts = {}
    requires_backend = None

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


@register
class MixedPrecision(TechniqueStep):
    """Compute in 16-bit floats, keep variables in float32 (Keras dtype policy)."""

    technique = "mixed_precision"
    fields = {"policy": Choice(("mixed_float16", "mixed_bfloat16"), "mixed_float16")}

    def configure(self, ctx):
        import keras

        super().configure(ctx)
        # Layers read the global policy when they are created, so this precedes the build.
        keras.mixed_precision.set_global_policy(self.params["policy"])

    def after_train(self, ctx):
        import keras

        optimizer = ctx.model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            ctx.notes.append(
                "mixed_float16: Keras compile() wrapped the optimizer in LossScaleOptimizer "
                f"(dynamic loss scaling; final scale {float(optimizer.dynamic_scale):g})"
            )
        elif self.params["policy"] == "mixed_float16":
            ctx.notes.append("mixed_float16 trained without loss scaling (optimizer not wrapped)")
        else:
            ctx.notes.append("mixed_bfloat16 needs no loss scaling (float32's exponent range)")


@register
class XLA(TechniqueStep):
    """Compile the train, test and predict functions with XLA (jit_compile=True)."""

    technique = "xla"

    def compile_options(self, ctx):
        return {"jit_compile": True}

    def after_train(self, ctx):
        # Keras quietly falls back to jit_compile=False for models it cannot compile; a run
        # labelled XLA that was not compiled would compare the baseline with itself.
        if not ctx.model.jit_compile:
            raise EngineError("xla: Keras could not jit-compile this model")
        # The first epoch's excess over a later one, less the baseline's own (its tracing).
        ctx.add_one_time_cost("XLA compilation", ctx.compile_seconds, pays_back="training",
                              less_baseline="compile_seconds")


@register
class PostTrainingQuantization(TechniqueStep):
    """Convert the trained model to TFLite with post-training quantization.

    The measured artifact becomes the quantized .tflite; the float32 .tflite of the same
    weights is measured alongside as ``reference``, because the switch from Keras to LiteRT
    alone changes latency several-fold and that gain is not quantization's.
    """

    technique = "ptq"
    fields = {"mode": Choice(("dynamic_int8", "float16", "full_int8"), "dynamic_int8"),
              "representative_samples": Integer(1, 10_000, 100)}
    requires_backend = "tensorflow"

    def after_train(self, ctx):
        from runners.engine.measure import TFLiteRuntime

        events.phase("convert")
        mode = self.params["mode"]
        model = _float32_twin(ctx.model)
        if model is not ctx.model:
            ctx.notes.append("ptq converted a float32 copy of the mixed-precision model's weights")
        reference_path = ctx.write_artifact("model_float32.tflite",
                                            self._convert(model, ctx.data, None))
        started = time.perf_counter()
        quantized = self._convert(model, ctx.data, mode)
        what = "TFLite conversion and calibration" if mode == "full_int8" \
            else "TFLite conversion"
        ctx.add_one_time_cost(what, time.perf_counter() - started)
        quantized_path = ctx.write_artifact(f"model_{mode}.tflite", quantized)
        ctx.reference = TFLiteRuntime(reference_path)
        ctx.runtime = TFLiteRuntime(quantized_path)
        ctx.notes.append(
            f"ptq {mode}: reference is the float32 TFLite model of the same weights in LiteRT; "
            "compare with it to separate quantization from the Keras-to-LiteRT switch"
        )
        if mode == "full_int8":
            ctx.notes.append(
                f"full_int8 calibrated on {self.params['representative_samples']} training "
                "samples; int8 input and output tensors"
            )

    def _convert(self, model, data, mode):
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if mode is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "full_int8":
            calibration = data.x_train[: self.params["representative_samples"]]

            def representative_dataset():
                for i in range(len(calibration)):
                    yield [calibration[i : i + 1]]

            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()


def _float32_twin(model):
    """The model itself, or a float32 copy when mixed precision left float16 ops in it.

    TFLite has no float16 Conv2D builtin, so converting a mixed_float16 model fails; its
    variables are float32 already, so a float32 rebuild with the same weights is exact.
    """
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model
    twin = model.__class__.from_config(_float32_policies(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def _float32_policies(config):
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        return {**config, "config": {**config["config"], "name": "float32"}}
    return {key: _float32_policies(value) for key, value in config.items()}


# --- Shared checks and helpers -------------------------------------------------------------


def _count(number, noun):
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _import_tensorflow(technique):
    """TensorFlow for steps that need its runtime even where Keras runs on another backend."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise EngineError(f"{technique} needs TensorFlow, which is not installed here") from exc
    return tf


def _split_devices(technique, count, wanted=None):
    """``count`` device names: the GPUs when there are enough, else logical CPU devices.

    Logical devices exist only if configured before TensorFlow initialises its runtime, which
    is why the run calls ``configure`` before anything touches a device.
    """
    tf = _import_tensorflow(technique)
    if wanted:
        known = {d.name.lower().replace("/device:", "/") for d in tf.config.list_logical_devices()}
        missing = [d for d in wanted if d.lower().replace("/device:", "/") not in known]
        if missing:
            raise EngineError(f"{technique}: no device {', '.join(missing)}; this machine has "
                              f"{', '.join(sorted(known))}")
        return list(wanted)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < count:
            raise EngineError(f"{technique} asked for {count} devices; this machine has "
                              f"{len(gpus)} GPU(s)")
        return [f"/gpu:{i}" for i in range(count)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as exc:
        # Already initialised: fine if an earlier step split the CPU the same way.
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise EngineError(
                f"{technique} must split the CPU before TensorFlow starts, and it has started"
            ) from exc
    return [f"/cpu:{i}" for i in range(count)]


def _dataset_options(ctx, options):
    """fit options with numpy x/y (and validation arrays) replaced by batched tf.data."""
    tf = _import_tensorflow("tf.data input")
    batch = options["batch_size"]

    def batched(x, y, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=ctx.training["seed"], reshuffle_each_iteration=True)
        return ds.batch(batch).prefetch(tf.data.AUTOTUNE)

    changed = {k: v for k, v in options.items() if k not in ("y", "batch_size", "shuffle")}
    changed["x"] = batched(options["x"], options["y"], options.get("shuffle", True))
    if options.get("validation_data") is not None:
        changed["validation_data"] = batched(*options["validation_data"], False)
    else:
        changed.pop("validation_data", None)
    return changed


def _chain_layers(model, technique):
    """The layers of a model that is one straight chain (seed_mlp, seed_cnn), inputs first."""
    from runners.engine.modelfile import straight_chain

    layers = straight_chain(model)
    if layers is None:
        raise EngineError(
            f"{technique} rebuilds models layer by layer and needs a straight chain of "
            f"layers; {model.name} has branches (use the resnet's own options instead)"
        )
    return layers


def _rebuild_chain(model, technique, expand):
    """A new functional model from a chain; ``expand(layer)`` gives the layers to use for it."""
    import keras

    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    x = inputs
    for layer in _chain_layers(model, technique):
        for new in expand(layer):
            x = new(x)
    return keras.Model(inputs, x, name=model.name)


def _chain_refusal(technique, model):
    """applies_to's side of _chain_layers: refuse a model known to branch."""
    if model.chain is False:
        return (f"The {technique} step rebuilds models layer by layer and needs a straight "
                f"chain of layers; {model.arch} has branches.")
    return None


def _leaf_layers(model):
    """The layers of a model, those of nested models in place of the models."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ != "InputLayer":
            yield from _leaf_layers(layer)
        else:
            yield layer


def _is_hidden_weighted(layer):
    return layer.__class__.__name__ in ("Dense", "Conv2D", "Conv1D", "DepthwiseConv2D",
                                        "SeparableConv2D") and layer.name != "logits"


# --- Parallelism ----------------------------------------------------------------------------


@register
class DataParallel(TechniqueStep):
    """Synchronous data parallelism with tf.distribute.MirroredStrategy.

    Without GPUs the CPU is split into ``replicas`` logical devices.  The training batch size
    is the global batch, split across replicas, so the gradient math equals one replica's and
    the loss should match a single-device run; add large_batch to grow the global batch.
    Scaling efficiency needs a one-replica throughput: after training, a fresh copy of the
    model trains two epochs on one device in the same process and its second epoch is timed.
    """

    technique = "data_parallel"
    fields = {
        "replicas": Integer(1, 64, None, nullable=True),
        # Device names such as ["/gpu:0", "/gpu:1"]; null: the GPUs, or a split CPU.
        "devices": ListOf(Text(64, blank=False, label="a data_parallel device name"), None,
                          min_items=1, max_items=64, nullable=True),
    }
    requires_backend = "tensorflow"

    @classmethod
    def check(cls, params):
        replicas, devices = params["replicas"], params["devices"]
        if None not in (replicas, devices) and replicas != len(devices):
            raise ValueError(f"The data_parallel replicas must equal the number of devices "
                             f"(got {replicas} for {_count(len(devices), 'device')}).")

    def configure(self, ctx):
        super().configure(ctx)
        tf = _import_tensorflow(self.technique)
        count = self.params["replicas"]
        if count is None and not self.params["devices"]:
            count = len(tf.config.list_physical_devices("GPU")) or 2
        devices = _split_devices(self.technique, count or len(self.params["devices"]),
                                 self.params["devices"])
        self.devices = devices
        self.strategy = tf.distribute.MirroredStrategy(devices)

    def scope(self, ctx):
        return self.strategy.scope()

    def fit_options(self, ctx, options):
        # Under a strategy Keras feeds numpy arrays through a slow per-step path (3x slower
        # here); a batched tf.data dataset is what MirroredStrategy distributes natively.
        if isinstance(options["x"], np.ndarray):
            options = _dataset_options(ctx, options)
            ctx.notes.append("data_parallel: training arrays fed as a batched tf.data dataset "
                             "(shuffled each epoch), which MirroredStrategy splits per replica")
        return options

    def after_train(self, ctx):
        self.one_replica_rate = self._one_replica_throughput(ctx)
        # Inference is measured on a single-device copy: mirrored variables would add the
        # strategy's bookkeeping to every batch-1 call.
        twin = ctx.model.__class__.from_config(ctx.model.get_config())
        twin.set_weights(ctx.model.get_weights())
        twin.compile(optimizer=ctx.model.optimizer, loss="sparse_categorical_crossentropy",
                     metrics=["accuracy"], jit_compile=ctx.model.jit_compile)
        ctx.model = twin
        ctx.notes.append(
            f"data_parallel: {self.strategy.num_replicas_in_sync} replicas on "
            f"{', '.join(self.devices)}; global batch {ctx.training['batch_size']} split across "
            "them; scaling_efficiency = train throughput / (replicas x one-replica throughput "
            "measured in this process, same global batch); inference measured on a "
            "single-device copy"
        )

    def _one_replica_throughput(self, ctx):
        import keras

        from runners.engine import zoo

        tf = _import_tensorflow(self.technique)
        data, training = ctx.data, ctx.training
        with tf.device(self.devices[0]):
            model = zoo.build_model(ctx.spec["model"], data.input_shape, data.num_classes)
            optimizer = ctx.model.optimizer
            model.compile(optimizer=optimizer.__class__.from_config(optimizer.get_config()),
                          loss="sparse_categorical_crossentropy",
                          jit_compile=ctx.model.jit_compile)
            times = []

            class Timer(keras.callbacks.Callback):
                def on_epoch_begin(self, epoch, logs=None):
                    self.started = time.perf_counter()

                def on_epoch_end(self, epoch, logs=None):
                    times.append(time.perf_counter() - self.started)

            options = _dataset_options(ctx, {
                "x": data.x_train, "y": data.y_train, "batch_size": training["batch_size"],
                "shuffle": True, "validation_data": None})
            model.fit(**options, epochs=2, verbose=0, callbacks=[Timer()])
        return len(data.x_train) / times[-1]

    def result_fields(self, ctx):
        replicas = self.strategy.num_replicas_in_sync
        rate = ctx.train_samples_per_s
        return {
            "replicas": replicas,
            "replica_devices": self.devices,
            "global_batch": ctx.training["batch_size"],
            "per_replica_batch": ctx.training["batch_size"] / replicas,
            "one_replica_train_samples_per_s": self.one_replica_rate,
            "scaling_efficiency": rate / (replicas * self.one_replica_rate) if rate else None,
        }


@register
class ModelParallel(TechniqueStep):
    """Layers split into contiguous groups, each group's variables and ops on its own device.

    Groups are balanced by parameter count; layers without weights follow the group before
    them.  Without GPUs the CPU is split into logical devices, so the placement is real but
    the devices share the same cores: this shows the mechanism, not a speedup.
    """

    technique = "model_parallel"
    fields = {"devices": Integer(2, 16, 2)}
    requires_backend = "tensorflow"

    @classmethod
    def applies_to(cls, params, model):
        return _chain_refusal(cls.technique, model)

    def configure(self, ctx):
        super().configure(ctx)
        self.devices = _split_devices(self.technique, self.params["devices"])

    def transform_model(self, ctx, model):
        import tensorflow as tf

        layers = _chain_layers(model, self.technique)
        total = sum(layer.count_params() for layer in layers) or 1
        self.placement, done = {}, 0
        group_of = {}
        for layer in layers:
            group = min(len(self.devices) - 1, int(done * len(self.devices) / total))
            group_of[layer.name] = group
            done += layer.count_params()

        def expand(layer):
            device = self.devices[group_of[layer.name]]
            new = layer.__class__.from_config(layer.get_config())
            with tf.device(device):
                new.build(layer.input.shape)
            call = new.call

            def placed_call(*args, **kwargs):
                with tf.device(device):
                    return call(*args, **kwargs)

            new.call = placed_call
            self.placement[new.name] = device
            return [new]

        placed = _rebuild_chain(model, self.technique, expand)
        self.model = placed
        return placed

    def after_train(self, ctx):
        import tensorflow as tf

        self.variable_devices = {
            layer.name: sorted({_short_device(w.value.device) for w in layer.weights})
            for layer in self.model.layers if layer.weights
        }
        spec = tf.TensorSpec([1, *ctx.data.input_shape], tf.float32)
        graph = tf.function(lambda x: self.model(x, training=False)).get_concrete_function(
            spec).graph
        self.op_devices = {}
        for op in graph.get_operations():
            if op.device:
                name = _short_device(op.device)
                self.op_devices[name] = self.op_devices.get(name, 0) + 1
        ctx.notes.append(
            f"model_parallel: layers in {len(self.devices)} groups on {', '.join(self.devices)}"
            + ("; logical CPU devices share the same cores" if "cpu" in self.devices[0] else "")
        )

    def result_fields(self, ctx):
        return {"placement": self.placement, "variable_devices": self.variable_devices,
                "op_devices": self.op_devices}


def _short_device(name):
    """'/job:localhost/replica:0/task:0/device:CPU:1' -> '/cpu:1'."""
    tail = name.rsplit("device:", 1)[-1]
    return "/" + tail.lower()


@register
class OpParallelism(TechniqueStep):
    """TensorFlow's intra-op (within one op) and inter-op (ops side by side) thread pools.

    0 leaves the choice to TensorFlow (all cores).  Set before TensorFlow starts its runtime.
    """

    technique = "op_parallelism"
    fields = {"intra_op_threads": Integer(0, 256, 0), "inter_op_threads": Integer(0, 256, 0)}
    requires_backend = "tensorflow"

    def configure(self, ctx):
        import tensorflow as tf

        super().configure(ctx)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.params["intra_op_threads"])
            tf.config.threading.set_inter_op_parallelism_threads(self.params["inter_op_threads"])
        except RuntimeError as exc:
            raise EngineError("op_parallelism must be set before TensorFlow starts") from exc

    def result_fields(self, ctx):
        import tensorflow as tf

        return {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        }


# --- Input pipeline -------------------------------------------------------------------------


@register
class InputPipeline(TechniqueStep):
    """Feed model.fit from a tf.data pipeline instead of numpy arrays."""

    technique = "input_pipeline"
    fields = {
        "cache": Boolean(True), "prefetch": Boolean(True), "parallel_map": Boolean(True),
        # null: the whole training set.
        "shuffle_buffer": Integer(1, 10_000_000, None, nullable=True),
    }

    def fit_options(self, ctx, options):
        tf = _import_tensorflow(self.technique)
        p = self.params
        batch = options["batch_size"]
        self.used = ["from_tensor_slices"]

        def pipeline(x, y, training):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if p["cache"]:
                ds = ds.cache()
            if training and options.get("shuffle", True):
                buffer = p["shuffle_buffer"] or len(x)
                ds = ds.shuffle(buffer, seed=ctx.training["seed"], reshuffle_each_iteration=True)
            # The map casts to float32: the arrays are float32 already, so what it shows is
            # the cost of running a per-sample function serially or in parallel.
            calls = tf.data.AUTOTUNE if p["parallel_map"] else None
            ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=calls)
            ds = ds.batch(batch)
            if p["prefetch"]:
                ds = ds.prefetch(tf.data.AUTOTUNE)
            return ds

        if p["cache"]:
            self.used.append("cache")
        self.used.append(f"shuffle({p['shuffle_buffer'] or len(options['x'])})")
        self.used.append("map(parallel AUTOTUNE)" if p["parallel_map"] else "map(serial)")
        self.used.append(f"batch({batch})")
        if p["prefetch"]:
            self.used.append("prefetch(AUTOTUNE)")
        x_val, y_val = options["validation_data"]
        options = {k: v for k, v in options.items() if k not in ("y", "batch_size", "shuffle")}
        options["x"] = pipeline(ctx.data.x_train, ctx.data.y_train, True)
        options["validation_data"] = pipeline(x_val, y_val, False)
        self.fed = type(options["x"]).__name__
        ctx.notes.append("input_pipeline: model.fit read a tf.data pipeline: "
                         + " -> ".join(self.used))
        return options

    def result_fields(self, ctx):
        return {"input_pipeline": self.used, "fit_input": self.fed}


# --- Keras 3 quantization -------------------------------------------------------------------


@register
class KerasQuantize(TechniqueStep):
    """Keras 3's ``model.quantize`` after training, measured in Keras.

    It quantizes only Dense, EinsumDense and Embedding layers: convolutions stay float.  The
    float32 Keras model of the same weights is measured alongside as ``reference``.
    """

    technique = "keras_quantize"
    fields = {"mode": Choice(("int8", "int4", "float8"), "int8")}

    @classmethod
    def applies_to(cls, params, model):
        mode = params["mode"]
        # Keras's Embedding has no float8 mode: model.quantize skips it with a warning.
        kinds = ("Dense", "EinsumDense") if mode == "float8" else \
            ("Dense", "EinsumDense", "Embedding")
        if model.has(*kinds) is False:
            return (f"The keras_quantize {mode} step quantizes only "
                    f"{', '.join(kinds[:-1])} or {kinds[-1]} layers; {model.arch} has none.")
        return None

    def after_train(self, ctx):
        from runners.engine.measure import KerasRuntime

        events.phase("convert")
        mode = self.params["mode"]
        reference_path = ctx.save_model(ctx.model, "model.keras")
        quantized = ctx.model.__class__.from_config(ctx.model.get_config())
        quantized.set_weights(ctx.model.get_weights())
        quantized.quantize(mode)
        counted = {}
        layers = list(_leaf_layers(quantized))  # model.quantize reaches nested models too
        for layer in layers:
            policy = layer.dtype_policy.name
            if policy.startswith(mode):
                counted[layer.__class__.__name__] = counted.get(layer.__class__.__name__, 0) + 1
        self.quantized_layers = counted
        if not counted:
            raise EngineError(f"keras_quantize {mode}: this model has no Dense, EinsumDense or "
                              "Embedding layer to quantize")
        quantized_path = ctx.save_model(quantized, f"model_{mode}.keras")
        ctx.reference = KerasRuntime(ctx.model, reference_path)
        ctx.runtime = KerasRuntime(quantized, quantized_path)
        floats = sorted({layer.__class__.__name__ for layer in layers
                         if layer.weights and not layer.dtype_policy.name.startswith(mode)})
        ctx.notes.append(
            f"keras_quantize {mode}: model.quantize converts only Dense/EinsumDense/Embedding "
            f"layers ({', '.join(f'{n} {c}' for n, c in sorted(counted.items()))} quantized)"
            + (f"; {', '.join(floats)} stay float" if floats else "")
            + "; reference is the float32 Keras model of the same weights"
        )

    def result_fields(self, ctx):
        return {"quantized_layers": self.quantized_layers}


# --- Optimization ---------------------------------------------------------------------------


@register
class Optimizer(TechniqueStep):
    """The optimizer, replacing training.optimizer; the learning rate (or schedule) carries."""

    technique = "optimizer"
    fields = {
        "name": Choice(("sgd", "adam", "adamw", "lion", "rmsprop"), "adam"),
        "momentum": Number(0, 0.999, 0.9),  # sgd and rmsprop only
        "weight_decay": Number(0, 1, None, nullable=True),
    }

    def make_optimizer(self, ctx, optimizer):
        import keras

        p = self.params
        kwargs = {"learning_rate": optimizer.get_config()["learning_rate"]}
        if p["weight_decay"] is not None:
            kwargs["weight_decay"] = p["weight_decay"]
        if p["name"] == "sgd":
            return keras.optimizers.SGD(momentum=p["momentum"], **kwargs)
        if p["name"] == "rmsprop":
            return keras.optimizers.RMSprop(momentum=p["momentum"], **kwargs)
        cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "lion": keras.optimizers.Lion}[p["name"]]
        return cls(**kwargs)

    def after_train(self, ctx):
        optimizer = ctx.model.optimizer
        self.used = getattr(optimizer, "inner_optimizer", optimizer).__class__.__name__

    def result_fields(self, ctx):
        return {"optimizer": self.used}


@register
class LRSchedule(TechniqueStep):
    """Learning-rate schedules: warmup then cosine decay, cosine decay, reduce-on-plateau."""

    technique = "lr_schedule"
    fields = {
        "kind": Choice(("warmup_cosine", "cosine", "reduce_on_plateau"), "warmup_cosine"),
        "warmup_epochs": Integer(0, 1000, 1),
        "min_fraction": Number(0, 1, 0.0),
        "factor": Number(0, 0.999, 0.5, above=True),  # reduce_on_plateau's
        "patience": Integer(0, 1000, 2),
    }

    def make_optimizer(self, ctx, optimizer):
        import keras

        kind = self.params["kind"]
        if kind == "reduce_on_plateau":
            return optimizer
        rate = ctx.training["learning_rate"]
        steps_per_epoch = -(-len(ctx.data.x_train) // ctx.training["batch_size"])
        total = steps_per_epoch * ctx.training["epochs"]
        warmup = steps_per_epoch * self.params["warmup_epochs"] if kind == "warmup_cosine" else 0
        if warmup >= total:
            raise EngineError(f"lr_schedule: {self.params['warmup_epochs']} warmup epochs leave "
                              f"no epochs to decay in (training.epochs is "
                              f"{ctx.training['epochs']})")
        if warmup:
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0, total - warmup, alpha=self.params["min_fraction"], warmup_target=rate,
                warmup_steps=warmup)
        else:
            schedule = keras.optimizers.schedules.CosineDecay(
                rate, total, alpha=self.params["min_fraction"])
        config = {**optimizer.get_config(), "learning_rate": schedule}
        return optimizer.__class__.from_config(config)

    def callbacks(self, ctx):
        import keras

        self.rates = []
        rates = self.rates

        class RecordRate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

        recorded = [RecordRate()]
        if self.params["kind"] == "reduce_on_plateau":
            recorded.append(keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=self.params["factor"],
                patience=self.params["patience"], verbose=0))
        return recorded

    def result_fields(self, ctx):
        return {"learning_rates": self.rates}


@register
class BatchNorm(TechniqueStep):
    """BatchNormalization after every hidden Conv/Dense layer, before its activation."""

    technique = "batch_norm"
    fields = {"momentum": Number(0, 0.999, 0.9)}

    @classmethod
    def applies_to(cls, params, model):
        return _chain_refusal(cls.technique, model)

    def transform_model(self, ctx, model):
        import keras

        self.inserted = 0

        def expand(layer):
            config = layer.get_config()
            if not _is_hidden_weighted(layer):
                return [layer.__class__.from_config(config)]
            activation = config.get("activation", "linear")
            new = layer.__class__.from_config({**config, "activation": "linear"})
            self.inserted += 1
            # Keras's default momentum 0.99 leaves the moving statistics near their start
            # values after a short run (see zoo._resnet); 0.9 settles in time.
            added = [new, keras.layers.BatchNormalization(momentum=self.params["momentum"])]
            if activation != "linear":
                added.append(keras.layers.Activation(activation))
            return added

        return _rebuild_chain(model, self.technique, expand)

    def result_fields(self, ctx):
        return {"batch_norm_layers": self.inserted}


@register
class Regularization(TechniqueStep):
    """L2 weight penalty on Conv/Dense kernels, and a dropout rate for the Dropout layers."""

    technique = "regularization"
    fields = {
        "l2": Number(0, 1, 0.0001),
        # null: each Dropout layer keeps its rate.
        "dropout": Number(0, 0.95, None, nullable=True),
    }

    @classmethod
    def applies_to(cls, params, model):
        if params["dropout"] is not None and model.has("Dropout") is False:
            return (f"The regularization dropout sets the rate of the Dropout layers; "
                    f"{model.arch} has none (leave dropout null).")
        return None

    def transform_model(self, ctx, model):
        import keras

        l2, dropout = self.params["l2"], self.params["dropout"]
        self.l2_layers = self.dropout_layers = 0
        regularizer = keras.regularizers.serialize(keras.regularizers.L2(l2)) if l2 else None

        def edit(config):
            if isinstance(config, list):
                return [edit(item) for item in config]
            if not isinstance(config, dict):
                return config
            name = config.get("class_name")
            if name in ("Dense", "Conv2D", "Conv1D") and regularizer:
                self.l2_layers += 1
                return {**config, "config": {**config["config"],
                                             "kernel_regularizer": regularizer}}
            if name == "Dropout" and dropout is not None:
                self.dropout_layers += 1
                return {**config, "config": {**config["config"], "rate": dropout}}
            return {key: edit(value) for key, value in config.items()}

        edited = model.__class__.from_config(edit(model.get_config()))
        if dropout is not None and not self.dropout_layers:
            raise EngineError(f"regularization dropout: {model.name} has no Dropout layer to "
                              "set the rate of")
        return edited

    def result_fields(self, ctx):
        return {"l2_layers": self.l2_layers, "dropout_layers": self.dropout_layers}


@register
class LargeBatch(TechniqueStep):
    """Batch size x factor with the learning rate x factor (linear scaling, Goyal et al.)."""

    technique = "large_batch"
    fields = {"factor": Integer(2, 1024, 4)}

    def configure(self, ctx):
        super().configure(ctx)
        factor = self.params["factor"]
        ctx.training["batch_size"] *= factor
        ctx.training["learning_rate"] *= factor
        ctx.notes.append(f"large_batch: batch size {ctx.training['batch_size']}, learning rate "
                         f"{ctx.training['learning_rate']:g} ({factor}x both)")

    def result_fields(self, ctx):
        return {"batch_size": ctx.training["batch_size"],
                "learning_rate": ctx.training["learning_rate"]}


@register
class EarlyStop(TechniqueStep):
    """Stop at a target validation accuracy (time-to-accuracy) or after no improvement."""

    technique = "early_stop"
    fields = {
        "target_val_accuracy": Number(0, 1, 0.9, above=True, nullable=True),
        "patience": Integer(1, 1000, None, nullable=True),
    }

    @classmethod
    def check(cls, params):
        if params["target_val_accuracy"] is None and params["patience"] is None:
            raise ValueError("The early_stop step needs target_val_accuracy, patience or both.")

    def callbacks(self, ctx):
        import keras

        target, patience = self.params["target_val_accuracy"], self.params["patience"]
        self.reached = {"seconds": None, "epoch": None, "stopped_at": None}
        reached = self.reached

        class Stop(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.started = time.perf_counter()
                self.best, self.waited = -1.0, 0

            def on_epoch_end(self, epoch, logs=None):
                accuracy = (logs or {}).get("val_accuracy")
                if accuracy is None:
                    return
                if target is not None and accuracy >= target and reached["epoch"] is None:
                    reached["seconds"] = time.perf_counter() - self.started
                    reached["epoch"] = epoch + 1
                    reached["stopped_at"] = epoch + 1
                    self.model.stop_training = True
                    return
                if accuracy > self.best:
                    self.best, self.waited = accuracy, 0
                else:
                    self.waited += 1
                    if patience is not None and self.waited >= patience:
                        reached["stopped_at"] = epoch + 1
                        self.model.stop_training = True

        return [Stop()]

    def result_fields(self, ctx):
        return {
            "target_val_accuracy": self.params["target_val_accuracy"],
            "time_to_accuracy_seconds": self.reached["seconds"],
            "time_to_accuracy_epoch": self.reached["epoch"],
            "stopped_early_at_epoch": self.reached["stopped_at"],
        }


from runners.engine import compression  # noqa: E402,F401  (registers pruning, qat, clustering)
