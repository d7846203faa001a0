"""Training: the optimizer, learning-rate schedules, BatchNorm, regularization, large
batches and stopping at a target accuracy (time-to-accuracy)."""

import time

from runners.engine.events import EngineError
from runners.engine.fields import Choice, Integer, Number
from runners.engine.techniques._layers import chain_refusal, rebuild_chain
from runners.engine.techniques.base import TechniqueStep, register

# The family's place in the catalog, the form and the docs.
ORDER = 50


@register
class Optimizer(TechniqueStep):
    """The optimizer, replacing training.optimizer; the learning rate (or schedule) carries."""

    technique = "optimizer"
    label = "Optimizer"
    help = "SGD with momentum, Adam, AdamW, Lion, RMSprop."
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
    label = "Learning-rate schedule"
    help = "Warm-up, cosine decay, reduce on plateau."
    bench_params = ({"kind": "cosine"},)
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
    label = "BatchNorm"
    help = "Insert BatchNormalization after conv and dense layers."
    fields = {"momentum": Number(0, 0.999, 0.9)}

    @classmethod
    def applies_to(cls, params, model):
        return chain_refusal(cls.technique, model)

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

        return rebuild_chain(model, self.technique, expand)

    def result_fields(self, ctx):
        return {"batch_norm_layers": self.inserted}


@register
class Regularization(TechniqueStep):
    """L2 weight penalty on Conv/Dense kernels, and a dropout rate for the Dropout layers."""

    technique = "regularization"
    label = "Regularization"
    help = "L2 weight decay and dropout."
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
    label = "Large batch"
    help = "Batch size × factor with the learning rate scaled linearly."
    bench_params = ({"factor": 4},)
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
    label = "Stop at a target accuracy"
    help = "Stop when validation accuracy first reaches the target; reports time-to-accuracy."
    bench_params = ({"target_val_accuracy": 0.5},)
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


def _is_hidden_weighted(layer):
    return layer.__class__.__name__ in ("Dense", "Conv2D", "Conv1D", "DepthwiseConv2D",
                                        "SeparableConv2D") and layer.name != "logits"
