"""Compression: pruning and weight clustering (quantization-aware training, which this
explanation covers too, lives in quantization.py beside ptq, whose converter it ends in).

Why these are written on Keras 3 instead of using the TensorFlow Model Optimization Toolkit
-----------------------------------------------------------------------------------------
The toolkit (0.8.1) is the reference, but it only wraps tf_keras (Keras 2) models.  Using it
would mean a second model builder (tf_keras layers), a second training loop (our callbacks,
optimizers and step hooks are Keras 3 objects), TF_USE_LEGACY_KERAS=1 for the whole process,
and two more dependencies: tf-keras 2.21.0 requires the ``tensorflow`` distribution, which pip
installs (1.9 GB, GPU build) over the ``tensorflow-cpu`` files we use, plus dm-tree and mock.
Nor would it run under KERAS_BACKEND=jax, the only backend of the GPU machine.

Here each technique is a few lines of backend-neutral Keras 3 inside the normal training
step, so it composes with the other steps and, except for qat's TFLite output, also runs
under JAX:

- pruning: a kernel *constraint* (applied by the optimizer right after each update, inside
  the compiled train step) zeroes the smallest magnitudes down to the polynomial-decay
  sparsity of the optimizer's step counter, or keeps the 2 largest of every 4 input weights.
  Nothing wraps the layers, so there is nothing to strip: the saved model is plain.
- clustering: at the start of fine-tuning, 1-D k-means (k-means++ init) per kernel; from
  then on a constraint pulls every weight to the mean of its cluster after each update, so
  the k centroids are what trains (the toolkit's "average" gradient aggregation).
- qat: Dense/Conv layers are cloned into subclasses whose kernel is fake-quantized per output
  channel (int8, symmetric, narrow range: what the TFLite converter does) and whose outputs
  are fake-quantized per tensor with moving-average ranges, both with a straight-through
  gradient (keras.quantizers.fake_quant_with_min_max_vars).  After training the weights go
  back into the plain model, which the ptq step's converter turns into an int8 .tflite.

Checked against the toolkit on the same models (seed_mlp and seed_cnn on digits, adam 1e-3,
batch 64, 10 epochs, seed 0; pruning to 80% on polynomial decay, power 3, from step 0 to 70% of
training, masks updated every step; 2:4 from step 0; clustering k=16 (k-means++) after
training, 2 fine-tuning epochs; qat from the start, converted to int8 .tflite; TF 2.21,
tf_keras 2.21.0, toolkit 0.8.1).  Test accuracy on 360 samples (one sample = 0.3 points; the
two frameworks draw different initial weights, see the baselines); sparsity over the kernels:

================  =========================  =========================
seed_mlp          toolkit                    this module
================  =========================  =========================
baseline (float)  0.936                      0.917
pruning 80%       0.883, sparsity 0.800045   0.831, sparsity 0.800045
pruning 2:4       0.897, sparsity 0.5000     0.900, sparsity 0.5000
clustering k=16   0.950, 16 values/kernel    0.914, 16 values/kernel
qat, int8 tflite  0.942                      0.942 (float32 tflite 0.942)
================  =========================  =========================

================  =========================  =========================
seed_cnn          toolkit                    this module
================  =========================  =========================
baseline (float)  0.956                      0.958
pruning 80%       0.864, sparsity 0.799992   0.881, sparsity 0.799992
pruning 2:4       0.928, sparsity 0.4973     0.936, sparsity 0.4973
clustering k=16   0.967, 16 values/kernel    0.972, 16 values/kernel
qat, int8 tflite  0.950                      0.961 (float32 tflite 0.961)
================  =========================  =========================

The sparsities agree to the weight (both skip the 1-channel first convolution for 2:4).
Accuracies differ in both directions; the widest gap, seed_mlp pruned to 80% (5.2 points,
beside a 1.9-point gap between the baselines), is one seed on a 360-sample test set.
tests/test_compression.py re-runs the pruning comparison when TFMOT_PYTHON names an
interpreter that has the toolkit; the CI suite checks the effects themselves without it.
"""

import math

import numpy as np

from runners.engine.events import EngineError
from runners.engine.fields import Choice, Integer, Number
from runners.engine.techniques._fine_tune import add_fine_tune_cost, add_fine_tune_epochs, retrace
from runners.engine.techniques._layers import COMPRESSIBLE, compressible_layers
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs.
ORDER = 40


def _no_kernels(technique, verb, model):
    if model.has(*COMPRESSIBLE) is False:
        return (f"The {technique} step {verb} Dense and convolution kernels "
                f"({', '.join(COMPRESSIBLE)}); {model.arch} has none.")
    return None


def _steps_per_epoch(ctx):
    return math.ceil(len(ctx.data.x_train) / ctx.training["batch_size"])


def kernel_sparsity(model):
    """Fraction of exact zeros over the kernels of ``compressible_layers`` (biases excluded)."""
    kernels = [np.asarray(layer.kernel) for layer in compressible_layers(model)]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.count_nonzero(k == 0)) for k in kernels) / total) if total else 0.0


# --------------------------------------------------------------------------- pruning

def _optimizer_step(model):
    """The step counter of the optimizer the model was compiled with, read while it trains.

    Looked up at trace time rather than kept from make_optimizer: a later step may replace
    the optimizer, and compile() may wrap it (LossScaleOptimizer delegates ``iterations``).
    Plain numbers pass through, for tests.
    """
    return getattr(getattr(model, "optimizer", None), "iterations", model)


class PolynomialDecay:
    """The toolkit's sparsity schedule: 0 before ``begin``, ``target`` from ``end`` on."""

    def __init__(self, target, begin, end, power=3):
        self.target, self.begin, self.end, self.power = target, begin, end, power

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        progress = ops.clip((step - self.begin) / max(self.end - self.begin, 1), 0.0, 1.0)
        started = ops.cast(step >= self.begin, "float32")
        return started * self.target * (1.0 - (1.0 - progress) ** self.power)


class MagnitudeMask:
    """Kernel constraint: zero the smallest magnitudes, down to the scheduled sparsity.

    The optimizer applies it right after each update, so the next forward pass sees pruned
    weights and a pruned weight returns only if one update lifts it above the threshold.
    """

    def __init__(self, model, schedule):
        self.model, self.schedule = model, schedule

    def __call__(self, kernel):
        from keras import ops

        kernel = ops.convert_to_tensor(kernel)  # JAX's ops take arrays, not Variables
        magnitude = ops.abs(kernel)
        size = math.prod(kernel.shape)
        sparsity = self.schedule(_optimizer_step(self.model))
        pruned = ops.cast(ops.round(sparsity * size), "int32")
        ordered = ops.sort(ops.reshape(magnitude, (-1,)))
        threshold = ops.take(ordered, ops.maximum(pruned - 1, 0))
        threshold = ops.where(pruned > 0, threshold, -1.0)
        return ops.where(magnitude > threshold, kernel, ops.zeros_like(kernel))


class TwoOfFourMask:
    """Kernel constraint: of every 4 consecutive input weights keep the 2 largest (2:4).

    The input axis is the kernel's second last (Dense: (in, out); ConvND: (..., in, out)),
    the layout sparse tensor cores and XNNPACK's sparse kernels expect.
    """

    def __init__(self, model, begin):
        self.model, self.begin = model, begin

    def __call__(self, kernel):
        from keras import ops

        kernel = ops.convert_to_tensor(kernel)
        shape = tuple(kernel.shape)
        moved = ops.moveaxis(kernel, len(shape) - 2, -1)
        groups = ops.reshape(ops.abs(moved), (-1, 4))
        rank = ops.argsort(ops.argsort(groups, axis=-1), axis=-1)
        keep = ops.reshape(rank >= 2, tuple(moved.shape))
        keep = ops.moveaxis(keep, -1, len(shape) - 2)
        started = ops.cast(_optimizer_step(self.model), "float32") >= self.begin
        return ops.where(ops.logical_or(keep, ops.logical_not(started)), kernel,
                         ops.zeros_like(kernel))


@register
class Pruning(TechniqueStep):
    """Magnitude pruning on a polynomial-decay schedule, or 2:4 structured sparsity.

    ``begin``/``end`` are fractions of the pruning phase (the run's training, or the
    fine-tuning epochs after it); ``begin_step``/``end_step`` (optimizer steps from the start
    of training) override them.  2:4 is 50% sparse by construction and starts at the begin
    step; target_sparsity and the decay apply to "unstructured" only.
    """

    technique = "pruning"
    label = "Pruning"
    help = ("Magnitude pruning to a target sparsity on a polynomial-decay schedule, or 2:4 "
            "structured sparsity; size reported as gzip bytes after stripping.")
    fields = {
        "target_sparsity": Number(0, 1, 0.8, below=True),
        "schedule": Choice(("polynomial_decay", "constant"), "polynomial_decay"),
        "structure": Choice(("unstructured", "2:4"), "unstructured"),
        "begin": Number(0, 1, 0.0),
        "end": Number(0, 1, 0.7),
        "begin_step": Integer(0, 10**9, None, nullable=True),
        "end_step": Integer(0, 10**9, None, nullable=True),
        "power": Number(0, 10, 3, above=True),
        "fine_tune_epochs": Integer(0, 1000, 0),
    }

    @classmethod
    def check(cls, params):
        if params["begin"] > params["end"]:
            raise ValueError(f"The pruning begin must not come after end (got {params['begin']:g} "
                             f"and {params['end']:g}).")
        begin, end = params["begin_step"], params["end_step"]
        if None not in (begin, end) and begin > end:
            raise ValueError(f"The pruning begin_step must not come after end_step (got "
                             f"{begin:,} and {end:,}).")

    @classmethod
    def applies_to(cls, params, model):
        return _no_kernels(cls.technique, "prunes", model)

    def configure(self, ctx):
        super().configure(ctx)
        self.begin_epoch = add_fine_tune_epochs(ctx, self.params["fine_tune_epochs"])
        self.layers = []

    def _schedule_steps(self, ctx):
        # Here, not in configure: a later step's configure may still change the batch size.
        per_epoch = _steps_per_epoch(ctx)
        first, total = self.begin_epoch * per_epoch, ctx.training["epochs"] * per_epoch
        phase = total - first
        begin, end = self.params["begin_step"], self.params["end_step"]
        self.begin = first + round(self.params["begin"] * phase) if begin is None else begin
        self.end = first + round(self.params["end"] * phase) if end is None else end
        self.end = max(self.end, self.begin)
        if self.params["schedule"] == "constant":
            self.end = self.begin
        if self.end > total:
            raise EngineError(f"pruning ends at step {self.end}, after the last training step "
                              f"({total})")

    def make_optimizer(self, ctx, optimizer):
        # After every transform_model, so the constraints sit on the variables that train.
        self._schedule_steps(ctx)
        skipped = []
        for layer in compressible_layers(ctx.model):
            if self.params["structure"] == "2:4":
                if layer.kernel.shape[-2] % 4:
                    skipped.append(layer.name)
                    continue
                constraint = TwoOfFourMask(ctx.model, self.begin)
            else:
                schedule = PolynomialDecay(self.params["target_sparsity"], self.begin,
                                           self.end, self.params["power"])
                constraint = MagnitudeMask(ctx.model, schedule)
            layer.kernel.constraint = constraint
            self.layers.append(layer.name)
        if not self.layers:
            raise EngineError("pruning found no Dense or convolution kernel to prune")
        if skipped:
            ctx.notes.append(f"2:4 pruning skipped {', '.join(skipped)}: input size not a "
                             "multiple of 4")
        return optimizer

    def after_train(self, ctx):
        add_fine_tune_cost(ctx, "pruning", self.begin_epoch, self.params["fine_tune_epochs"])
        # The masks live in constraints, not wrappers: dropping them leaves a plain model.
        for layer in compressible_layers(ctx.model):
            layer.kernel.constraint = None
        if self.params["structure"] == "2:4":
            ctx.notes.append(f"2:4 structured sparsity from step {self.begin}")
        elif kernel_sparsity(ctx.model) < self.params["target_sparsity"] - 0.01:
            ctx.notes.append(
                f"pruning stopped short of {self.params['target_sparsity']:g} sparsity: "
                f"training ended before step {self.end}, where the schedule reaches it")
        else:
            ctx.notes.append(
                f"pruning: {self.params['schedule']} to {self.params['target_sparsity']:g} "
                f"from step {self.begin} to {self.end}, masks updated every step")

    def result_fields(self, ctx):
        target = 0.5 if self.params["structure"] == "2:4" else self.params["target_sparsity"]
        return {
            "target_sparsity": target,
            "kernel_sparsity": kernel_sparsity(ctx.model),
            "structure": self.params["structure"],
            "pruned_layers": self.layers,
        }


# --------------------------------------------------------------------------- clustering

def kmeans_1d(values, k, *, seed=0, iterations=30):
    """Centroids and assignments of 1-D k-means with k-means++ initialisation."""
    values = np.asarray(values, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    k = min(k, len(np.unique(values)))
    centroids = [values[rng.integers(len(values))]]
    for _ in range(1, k):
        distance = np.min(np.abs(values[:, None] - np.array(centroids)[None, :]), axis=1) ** 2
        centroids.append(values[rng.choice(len(values), p=distance / distance.sum())])
    centroids = np.sort(np.array(centroids))
    for _ in range(iterations):
        # Sorted 1-D centroids: the nearest one is found from the midpoints between them.
        assignment = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
        sums = np.bincount(assignment, weights=values, minlength=k)
        counts = np.bincount(assignment, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        order = np.argsort(updated)
        if np.allclose(updated[order], centroids):
            break
        centroids = updated[order]
    assignment = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
    return centroids.astype(np.float32), assignment.astype(np.int32)


class ClusterConstraint:
    """Kernel constraint: every weight becomes the mean of its (fixed) cluster after each update.

    Starting from ``centroid[assignment]``, that moves each centroid by the mean update of
    its members: the centroids train, the assignments stay (the toolkit's AVG aggregation).
    """

    def __init__(self, assignment, k):
        self.assignment, self.k = assignment, k
        self.counts = np.maximum(np.bincount(assignment, minlength=k), 1).astype(np.float32)

    def __call__(self, kernel):
        from keras import ops

        flat = ops.reshape(ops.convert_to_tensor(kernel), (-1,))
        sums = ops.segment_sum(flat, self.assignment, num_segments=self.k)
        centroids = sums / self.counts
        return ops.reshape(ops.take(centroids, self.assignment), tuple(kernel.shape))


def cluster_kernels(model, k, seed=0):
    """k-means each kernel, set it to its centroids, attach the constraint; returns layer names."""
    names = []
    for layer in compressible_layers(model):
        kernel = np.asarray(layer.kernel)
        centroids, assignment = kmeans_1d(kernel, k, seed=seed)
        layer.kernel.assign(centroids[assignment].reshape(kernel.shape))
        layer.kernel.constraint = ClusterConstraint(assignment, len(centroids))
        names.append(layer.name)
    return names


def unique_values_per_kernel(model):
    return {layer.name: int(np.unique(np.asarray(layer.kernel)).size)
            for layer in compressible_layers(model)}


@register
class Clustering(TechniqueStep):
    """Weight clustering: k shared values per kernel, then fine-tuning of the centroids."""

    technique = "clustering"
    label = "Weight clustering"
    help = "Weights share k centroids per layer."
    fields = {"clusters": Integer(2, 65536, 16), "fine_tune_epochs": Integer(0, 1000, 2)}
    # configure's EngineError at run time, in whichever order the two steps come.
    conflicts = {"pruning": "Clustering cannot share a recipe with pruning yet: both hold the "
                            "kernels through a constraint."}

    @classmethod
    def applies_to(cls, params, model):
        return _no_kernels(cls.technique, "clusters", model)

    def configure(self, ctx):
        super().configure(ctx)
        if any(step["technique"] == "pruning" for step in ctx.spec["steps"]):
            # Both hold the kernels through a constraint; sparsity-preserving clustering
            # (the toolkit's) would need one constraint that does both.
            raise EngineError("clustering cannot follow pruning in one recipe yet")
        self.begin_epoch = add_fine_tune_epochs(ctx, self.params["fine_tune_epochs"])
        self.layers = []

    def callbacks(self, ctx):
        import keras

        step = self

        class ClusterAtFineTuning(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if step.params["fine_tune_epochs"] and epoch == step.begin_epoch:
                    step.cluster(ctx)
                    retrace(self.model)

        return [ClusterAtFineTuning()]

    def cluster(self, ctx):
        self.layers = cluster_kernels(ctx.model, self.params["clusters"],
                                      seed=ctx.training["seed"])

    def after_train(self, ctx):
        add_fine_tune_cost(ctx, "clustering", self.begin_epoch, self.params["fine_tune_epochs"])
        if not self.layers:
            # No fine-tuning epochs (or training stopped early): cluster the trained weights.
            self.cluster(ctx)
        if not self.layers:
            raise EngineError("clustering found no Dense or convolution kernel to cluster")
        for layer in compressible_layers(ctx.model):
            layer.kernel.constraint = None
        ctx.notes.append(
            f"clustering: {self.params['clusters']} centroids per kernel (k-means++), "
            f"{self.params['fine_tune_epochs']} fine-tuning epochs of the centroids")

    def result_fields(self, ctx):
        return {"clusters": self.params["clusters"],
                "unique_values_per_kernel": unique_values_per_kernel(ctx.model)}
