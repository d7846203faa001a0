"""Parallelism: data parallelism, model parallelism, the thread pools, tf.data input."""

import time

import numpy as np

from runners.engine.events import EngineError
from runners.engine.fields import Boolean, Integer, ListOf, Text
from runners.engine.techniques._layers import chain_layers, chain_refusal, rebuild_chain
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs.
ORDER = 10


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
    label = "Data parallelism"
    help = ("tf.distribute.MirroredStrategy over the visible GPUs; without GPUs the CPU is "
            "split into logical devices. Reports replicas, global batch and scaling efficiency.")
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
    label = "Model parallelism"
    help = "Groups of layers placed on different devices."
    fields = {"devices": Integer(2, 16, 2)}
    requires_backend = "tensorflow"

    @classmethod
    def applies_to(cls, params, model):
        return chain_refusal(cls.technique, model)

    def configure(self, ctx):
        super().configure(ctx)
        self.devices = _split_devices(self.technique, self.params["devices"])

    def transform_model(self, ctx, model):
        import tensorflow as tf

        layers = chain_layers(model, self.technique)
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

        placed = rebuild_chain(model, self.technique, expand)
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
    label = "Op-level parallelism"
    help = "TensorFlow's intra-op and inter-op thread pools (0 = TensorFlow's default)."
    bench_params = ({"intra_op_threads": 1, "inter_op_threads": 1},)
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


@register
class InputPipeline(TechniqueStep):
    """Feed model.fit from a tf.data pipeline instead of numpy arrays."""

    technique = "input_pipeline"
    label = "Input pipeline"
    help = "tf.data with cache, prefetch(AUTOTUNE) and parallel map."
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


# --- Helpers ---------------------------------------------------------------------------------


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
