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

from runners.engine import events
from runners.engine.events import EngineError

TECHNIQUES = {}
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

# Named in the design but not built yet: these get a clearer message than "unknown".
PLANNED = (
    "data_parallel", "model_parallel", "op_parallelism", "input_pipeline", "keras_quantize",
    "pruning", "qat", "clustering", "optimizer", "lr_schedule", "batch_norm",
    "regularization", "large_batch", "early_stop",
)


def register(cls):
    TECHNIQUES[cls.technique] = cls
    return cls


class TechniqueStep:
    technique = ""
    # parameter -> default value; a parameter not listed here is rejected.
    defaults = {}
    # parameter -> allowed values, for parameters with a fixed set of choices.
    choices = {}
    requires_backend = None

    def __init__(self, **params):
        self.params = self.validate(params)

    @classmethod
    def validate(cls, params):
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            takes = ", ".join(cls.defaults) or "no parameters"
            raise ValueError(
                f"{cls.technique} does not take {', '.join(unknown)}; it takes {takes}"
            )
        filled = {**cls.defaults, **params}
        for name, allowed in cls.choices.items():
            if filled[name] not in allowed:
                raise ValueError(
                    f"{cls.technique} {name} must be one of {', '.join(allowed)}, "
                    f"not {filled[name]!r}"
                )
        cls.check(filled)
        return filled

    @classmethod
    def check(cls, params):
        """Checks beyond choices; raise ValueError with a message for the user."""

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
    """The step with defaults filled in; ValueError with a readable message otherwise."""
    if not isinstance(step, dict) or not isinstance(step.get("technique"), str):
        raise ValueError('each step must be an object with a "technique" name')
    params = {k: v for k, v in step.items() if k != "technique"}
    name = step["technique"]
    if name not in TECHNIQUES:
        available = ", ".join(sorted(TECHNIQUES))
        if name in PLANNED:
            raise ValueError(f"technique {name!r} is not available yet; available: {available}")
        raise ValueError(f"unknown technique {name!r}; available: {available}")
    return {"technique": name, **TECHNIQUES[name].validate(params)}


def build_steps(step_specs):
    """Step objects for a recipe; one of each technique, since a second would only conflict."""
    steps, seen = [], set()
    for spec in step_specs:
        spec = validate_step(spec)
        name = spec.pop("technique")
        if name in seen:
            raise ValueError(f"technique {name!r} appears twice in the recipe")
        seen.add(name)
        steps.append(TECHNIQUES[name](**spec))
    return steps


@register
class MixedPrecision(TechniqueStep):
    """Compute in 16-bit floats, keep variables in float32 (Keras dtype policy)."""

    technique = "mixed_precision"
    defaults = {"policy": "mixed_float16"}
    choices = {"policy": ("mixed_float16", "mixed_bfloat16")}

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


@register
class PostTrainingQuantization(TechniqueStep):
    """Convert the trained model to TFLite with post-training quantization.

    The measured artifact becomes the quantized .tflite; the float32 .tflite of the same
    weights is measured alongside as ``reference``, because the switch from Keras to LiteRT
    alone changes latency several-fold and that gain is not quantization's.
    """

    technique = "ptq"
    defaults = {"mode": "dynamic_int8", "representative_samples": 100}
    choices = {"mode": ("dynamic_int8", "float16", "full_int8")}
    requires_backend = "tensorflow"

    @classmethod
    def check(cls, params):
        samples = params["representative_samples"]
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 10000:
            raise ValueError("ptq representative_samples must be an integer from 1 to 10000")

    def after_train(self, ctx):
        from runners.engine.measure import TFLiteRuntime

        events.phase("convert")
        mode = self.params["mode"]
        model = _float32_twin(ctx.model)
        if model is not ctx.model:
            ctx.notes.append("ptq converted a float32 copy of the mixed-precision model's weights")
        reference_path = ctx.write_artifact("model_float32.tflite",
                                            self._convert(model, ctx.data, None))
        quantized_path = ctx.write_artifact(f"model_{mode}.tflite",
                                            self._convert(model, ctx.data, mode))
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
from runners.engine import compression  # noqa: E402,F401  (registers pruning, qat, clustering)
