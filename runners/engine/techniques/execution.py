"""Execution: how often Python calls into the compiled train function."""

from runners.engine.fields import Integer
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs: after precision and compilation.
ORDER = 25


@register
class StepsPerExecution(TechniqueStep):
    """Run ``steps`` batches per call of the compiled train (and test) function.

    Keras calls its compiled step function once per batch from Python; each call costs
    dispatch and callback overhead that a small model's batch (tens of microseconds of
    compute) cannot hide. ``model.compile(steps_per_execution=N)`` loops over N batches
    inside one call (the last call of an epoch takes what is left), so that overhead is
    paid once per N batches. Callbacks see one batch per call: the epoch's progress and a
    cancellation are noticed every N batches.
    """

    technique = "steps_per_execution"
    label = "Steps per execution"
    help = ("model.compile(steps_per_execution=N): N batches per call of the compiled train "
            "function, cutting the per-batch Python overhead that dominates small models.")
    fields = {"steps": Integer(1, 1000, 32)}
    # From this many parameters a batch computes for milliseconds on a CPU: the overhead
    # saved (well under a millisecond per batch) is a small share of it.
    busy_params = 1_000_000

    @classmethod
    def advise(cls, params, machine, model_params):
        if machine.kind == "cpu" and model_params is not None \
                and model_params >= cls.busy_params:
            return (f"steps_per_execution on a CPU with a model of {model_params:,} "
                    "parameters: each batch computes for milliseconds, so the per-batch "
                    "Python overhead it saves is a small share: expect little speedup")
        return None

    def compile_options(self, ctx):
        return {"steps_per_execution": self.params["steps"]}

    def callbacks(self, ctx):
        import keras

        step = self

        class Record(keras.callbacks.Callback):
            # Read from the model that trains: a later step's after_train may replace
            # ctx.model with an inference copy compiled without it.
            def on_train_begin(self, logs=None):
                step.used = int(self.model.steps_per_execution)

        self.used = None
        return [Record()]

    def after_train(self, ctx):
        ctx.notes.append(
            f"steps_per_execution: {self.used} batches per call of the compiled train "
            "function; callbacks (epoch progress, cancellation) ran once per call")

    def result_fields(self, ctx):
        return {"steps_per_execution": self.used}
