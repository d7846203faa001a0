"""Quantization: post-training (TFLite), Keras 3's model.quantize, and quantization-aware
training, which ends in ptq's converter (so the two live together).

Each ships a quantized model and measures the float32 model of the same weights beside it
(``ctx.reference``), in the same runtime: the speedup of quantization is read against that.
"""

import time

from runners.engine import events
from runners.engine.events import EngineError
from runners.engine.fields import Choice, Integer
from runners.engine.techniques._fine_tune import add_fine_tune_cost, add_fine_tune_epochs, retrace
from runners.engine.techniques._layers import compressible_layers
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs.
ORDER = 30


@register
class PostTrainingQuantization(TechniqueStep):
    """Convert the trained model to TFLite with post-training quantization.

    The measured artifact becomes the quantized .tflite; the float32 .tflite of the same
    weights is measured alongside as ``reference``, because the switch from Keras to LiteRT
    alone changes latency several-fold and that gain is not quantization's.
    """

    technique = "ptq"
    label = "Post-training quantization"
    help = ("TFLite converter, measured in the LiteRT interpreter and compared with the float32 "
            "TFLite model of the same run.")
    fields = {"mode": Choice(("dynamic_int8", "float16", "full_int8"), "dynamic_int8"),
              "representative_samples": Integer(1, 10_000, 100)}
    requires_backend = "tensorflow"
    quantizes = True
    presets = (("int8 (dynamic range)", {"mode": "dynamic_int8"}),
               ("float16 (TFLite)", {"mode": "float16"}),
               ("full int8 (TFLite)", {"mode": "full_int8"}))
    bench_params = ({"mode": "dynamic_int8"}, {"mode": "float16"}, {"mode": "full_int8"})

    @classmethod
    def advise(cls, params, machine, model_params):
        return _int8_advice(machine) if params["mode"] in ("dynamic_int8", "full_int8") \
            else None

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


@register
class KerasQuantize(TechniqueStep):
    """Keras 3's ``model.quantize`` after training, measured in Keras.

    It quantizes only Dense, EinsumDense and Embedding layers: convolutions stay float.  The
    float32 Keras model of the same weights is measured alongside as ``reference``.
    """

    technique = "keras_quantize"
    label = "Keras quantize"
    help = ("Keras 3 model.quantize: only Dense, EinsumDense and Embedding layers are quantized; "
            "Conv2D stays float.")
    fields = {"mode": Choice(("int8", "int4", "float8"), "int8")}
    quantizes = True
    bench_params = ({"mode": "int8"},)

    @classmethod
    def advise(cls, params, machine, model_params):
        return _int8_advice(machine) if params["mode"] == "int8" else None

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


# --- Quantization-aware training ------------------------------------------------------------

def _fake_quant_layer(base):
    """A subclass of ``base`` whose kernel and output go through int8 fake quantization."""
    import keras
    from keras import ops

    class FakeQuant(base):
        # Read when the step functions are traced; the qat callback flips it and retraces.
        fake_quant = True

        def build(self, input_shape):
            super().build(input_shape)
            self.output_min = self.add_weight(shape=(), initializer="zeros",
                                              trainable=False, name="output_min")
            self.output_max = self.add_weight(shape=(), initializer="zeros",
                                              trainable=False, name="output_max")
            self.ranges_seen = self.add_weight(shape=(), initializer="zeros",
                                               trainable=False, name="ranges_seen")

        @property
        def kernel(self):
            kernel = super().kernel
            if not self.fake_quant:
                return kernel
            # Per output channel, symmetric, [-127, 127]: TFLite's int8 weight scheme.
            axes = tuple(range(len(kernel.shape) - 1))
            bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-8))
            return keras.quantizers.fake_quant_with_min_max_vars(
                kernel, -bound, bound, num_bits=8, narrow_range=True, axis=-1)

        def call(self, inputs, training=None):
            outputs = super().call(inputs)
            if not self.fake_quant:
                return outputs
            if training:
                low = ops.stop_gradient(ops.minimum(ops.min(outputs), 0.0))
                high = ops.stop_gradient(ops.maximum(ops.max(outputs), 0.0))
                # Moving averages like the toolkit's, seeded by the first batch.
                decay = ops.where(self.ranges_seen > 0, 0.99, 0.0)
                self.output_min.assign(decay * self.output_min + (1 - decay) * low)
                self.output_max.assign(decay * self.output_max + (1 - decay) * high)
                self.ranges_seen.assign(1.0)
            high = ops.maximum(self.output_max, self.output_min + 1e-6)
            return keras.quantizers.fake_quant_with_min_max_vars(
                outputs, self.output_min, high, num_bits=8)

    FakeQuant.__name__ = f"FakeQuant{base.__name__}"
    return FakeQuant


@register
class QuantizationAwareTraining(TechniqueStep):
    """Train with int8 fake quantization, then convert to an int8 .tflite (as ptq does)."""

    technique = "qat"
    label = "Quantization-aware training"
    help = "Train with fake quantization, ship int8 TFLite."
    fields = {
        "mode": Choice(("full_int8", "dynamic_int8"), "full_int8"),
        "fine_tune_epochs": Integer(0, 1000, 0),
        # As ptq's (a field each: register labels it with the technique's name).
        "representative_samples": Integer(1, 10_000, 100),
    }
    conflicts = {"ptq": "The qat step converts to an int8 .tflite itself; remove ptq from the "
                        "recipe."}
    requires_backend = "tensorflow"
    quantizes = True

    @classmethod
    def advise(cls, params, machine, model_params):
        return _int8_advice(machine)

    @classmethod
    def applies_to(cls, params, model):
        if model.nested is True:
            return (f"The qat step supports models without nested models; {model.arch} "
                    "nests one.")
        return None

    def configure(self, ctx):
        super().configure(ctx)
        if any(step["technique"] == "ptq" for step in ctx.spec["steps"]):
            raise EngineError("qat converts to an int8 .tflite itself; remove ptq from the recipe")
        self.begin_epoch = add_fine_tune_epochs(ctx, self.params["fine_tune_epochs"])

    def transform_model(self, ctx, model):
        import keras

        self.float_model = model
        self.quantized = {}
        classes = {}

        def clone(layer):
            copy = layer.__class__.from_config(layer.get_config())
            if layer in compressible:
                base = layer.__class__
                classes.setdefault(base, _fake_quant_layer(base))
                copy = classes[base].from_config(layer.get_config())
                copy.fake_quant = not self.params["fine_tune_epochs"]
                self.quantized[layer.name] = copy
            return copy

        compressible = set(compressible_layers(model))
        if any(isinstance(layer, keras.Model) for layer in model.layers):
            raise EngineError("qat supports models without nested models")
        return keras.models.clone_model(model, clone_function=clone)

    def callbacks(self, ctx):
        import keras

        step = self

        class StartFakeQuant(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if step.params["fine_tune_epochs"] and epoch == step.begin_epoch:
                    for layer in step.quantized.values():
                        layer.fake_quant = True
                    retrace(self.model)

        return [StartFakeQuant()]

    def after_train(self, ctx):
        # Back into the plain model (same layers, same order): the converter quantizes it.
        trained = {layer.name: layer for layer in ctx.model.layers}
        for layer in self.float_model.layers:
            count = len(layer.weights)
            if count:
                layer.set_weights(trained[layer.name].get_weights()[:count])
        ctx.model = self.float_model
        add_fine_tune_cost(ctx, "qat", self.begin_epoch, self.params["fine_tune_epochs"])
        ctx.notes.append(
            f"qat: int8 fake quantization of {len(self.quantized)} kernels (per channel) and "
            f"their outputs from epoch {self.begin_epoch + 1}; converted like ptq "
            f"{self.params['mode']}")
        PostTrainingQuantization(
            mode=self.params["mode"],
            representative_samples=self.params["representative_samples"],
        ).after_train(ctx)

    def result_fields(self, ctx):
        return {"quantized_layers": sorted(self.quantized)}


# --- Helpers ---------------------------------------------------------------------------------


def _int8_advice(machine):
    """The int8 rule of ptq, keras_quantize and qat: without int8 dot-product instructions
    the CPU gains size, not speed."""
    if machine.kind != "cpu" or machine.has_any(machine.INT8_DOT_FLAGS):
        return None
    return ("int8 on a CPU without int8 dot-product instructions "
            f"({' / '.join(machine.INT8_DOT_FLAGS)} absent): expect ~4x smaller weights but "
            "little or no speedup")


def _leaf_layers(model):
    """The layers of a model, those of nested models in place of the models."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ != "InputLayer":
            yield from _leaf_layers(layer)
        else:
            yield layer
