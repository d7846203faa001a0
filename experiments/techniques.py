"""The technique catalog the recipe builder draws from, read off the engine's registry so the
form offers exactly the steps and parameters the engine validates."""

from runners.engine import fields
from runners.engine.steps import TECHNIQUES

# technique -> (label, what a user should know before choosing it)
DESCRIPTIONS = {
    "data_parallel": (
        "Data parallelism",
        "tf.distribute.MirroredStrategy over the visible GPUs; without GPUs the CPU is split "
        "into logical devices. Reports replicas, global batch and scaling efficiency.",
    ),
    "model_parallel": (
        "Model parallelism", "Groups of layers placed on different devices.",
    ),
    "op_parallelism": (
        "Op-level parallelism",
        "TensorFlow's intra-op and inter-op thread pools (0 = TensorFlow's default).",
    ),
    "mixed_precision": (
        "Mixed precision",
        "float16 (with loss scaling) or bfloat16 compute; the output layer stays float32.",
    ),
    "xla": ("XLA compilation", "Compile training and inference with XLA (jit_compile)."),
    "input_pipeline": (
        "Input pipeline", "tf.data with cache, prefetch(AUTOTUNE) and parallel map.",
    ),
    "ptq": (
        "Post-training quantization",
        "TFLite converter, measured in the LiteRT interpreter and compared with the float32 "
        "TFLite model of the same run.",
    ),
    "keras_quantize": (
        "Keras quantize",
        "Keras 3 model.quantize: only Dense, EinsumDense and Embedding layers are quantized; "
        "Conv2D stays float.",
    ),
    "pruning": (
        "Pruning",
        "Magnitude pruning to a target sparsity on a polynomial-decay schedule, or 2:4 "
        "structured sparsity; size reported as gzip bytes after stripping.",
    ),
    "qat": ("Quantization-aware training", "Train with fake quantization, ship int8 TFLite."),
    "clustering": ("Weight clustering", "Weights share k centroids per layer."),
    "optimizer": ("Optimizer", "SGD with momentum, Adam, AdamW, Lion, RMSprop."),
    "lr_schedule": ("Learning-rate schedule", "Warm-up, cosine decay, reduce on plateau."),
    "batch_norm": ("BatchNorm", "Insert BatchNormalization after conv and dense layers."),
    "regularization": ("Regularization", "L2 weight decay and dropout."),
    "large_batch": (
        "Large batch", "Batch size × factor with the learning rate scaled linearly.",
    ),
    "early_stop": (
        "Stop at a target accuracy",
        "Stop when validation accuracy first reaches the target; reports time-to-accuracy.",
    ),
}


def _kind(field):
    if isinstance(field, fields.Choice):
        return "choice"
    if field.default is None:
        return "optional"  # null, or a list left empty: the engine's default
    if isinstance(field, fields.Boolean):
        return "bool"
    if isinstance(field, fields.Integer):
        return "int"
    if isinstance(field, fields.Number):
        return "float"
    return "text"


def catalog() -> list[dict]:
    entries = []
    for name, cls in sorted(TECHNIQUES.items(), key=lambda item: _order(item[0])):
        label, help_text = DESCRIPTIONS.get(name, (name.replace("_", " "), ""))
        entries.append({
            "technique": name,
            "label": label,
            "help": help_text,
            "params": [
                {"name": param, "default": field.default, "kind": _kind(field),
                 "choices": list(getattr(field, "options", ()))}
                for param, field in cls.fields.items()
            ],
        })
    return entries


def _order(name):
    keys = list(DESCRIPTIONS)
    return keys.index(name) if name in keys else len(keys)


def presets() -> list[dict]:
    """One-click recipes: each technique with its defaults, and each PTQ mode."""
    out = []
    for entry in catalog():
        defaults = {p["name"]: p["default"] for p in entry["params"]}
        if entry["technique"] == "ptq":
            for mode, label in (("dynamic_int8", "int8 (dynamic range)"),
                                ("float16", "float16 (TFLite)"),
                                ("full_int8", "full int8 (TFLite)")):
                out.append({"key": f"ptq-{mode}", "label": label,
                            "recipe": {"name": label, "steps": [
                                {"technique": "ptq", **defaults, "mode": mode}]}})
            continue
        out.append({"key": entry["technique"], "label": entry["label"],
                    "recipe": {"name": entry["label"],
                               "steps": [{"technique": entry["technique"], **defaults}]}})
    return out
