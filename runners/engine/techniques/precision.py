"""Precision and compilation: mixed precision and XLA."""

from runners.engine.events import EngineError
from runners.engine.fields import Choice
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs.
ORDER = 20


@register
class MixedPrecision(TechniqueStep):
    """Compute in 16-bit floats, keep variables in float32 (Keras dtype policy)."""

    technique = "mixed_precision"
    label = "Mixed precision"
    help = "float16 (with loss scaling) or bfloat16 compute; the output layer stays float32."
    fields = {"policy": Choice(("mixed_float16", "mixed_bfloat16"), "mixed_float16")}
    bench_params = ({"policy": "mixed_float16"}, {"policy": "mixed_bfloat16"})

    @classmethod
    def advise(cls, params, machine, model_params):
        if machine.kind != "cpu":
            return None
        policy = params["policy"]
        wanted = machine.BFLOAT16_FLAGS if policy == "mixed_bfloat16" else machine.FLOAT16_FLAGS
        kind = "bfloat16" if policy == "mixed_bfloat16" else "float16"
        if machine.has_any(wanted):
            return None
        return (f"{policy} on a CPU without {kind} arithmetic ({' / '.join(wanted)} "
                "absent): every 16-bit op is emulated, so training is expected to be slower "
                "than float32 (2x for float16, ~8x for bfloat16 measured here)")

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
    label = "XLA compilation"
    help = "Compile training and inference with XLA (jit_compile)."
    jit_compile = True
    # Below this many parameters XLA's compile time and fused-kernel launch savings rarely
    # pay on a CPU (seed models: ~0.1M; XLA helped a CIFAR-size CNN, slowed the digits MLP).
    tiny_params = 1_000_000

    @classmethod
    def advise(cls, params, machine, model_params):
        if machine.kind == "cpu" and model_params is not None \
                and model_params < cls.tiny_params:
            return (f"XLA on a tiny model ({model_params:,} parameters) on a CPU: compilation "
                    "costs seconds and there is little to fuse, so it may not pay off")
        return None

    def compile_options(self, ctx):
        return {"jit_compile": self.jit_compile}

    def after_train(self, ctx):
        # Keras quietly falls back to jit_compile=False for models it cannot compile; a run
        # labelled XLA that was not compiled would compare the baseline with itself.
        if not ctx.model.jit_compile:
            raise EngineError("xla: Keras could not jit-compile this model")
        # The first epoch's excess over a later one, less the baseline's own (its tracing).
        ctx.add_one_time_cost("XLA compilation", ctx.compile_seconds, pays_back="training",
                              less_baseline="compile_seconds")
