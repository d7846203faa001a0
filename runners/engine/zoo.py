"""The model zoo: parameter checks and analytic sizes (pure), and Keras builders (lazy import).

``count_params`` and ``check_input_shape`` serve the web process, so they must stay free of
Keras; the builders import it inside.  The analytic counts mirror the builders exactly, which
tests/test_zoo.py checks against ``model.count_params()``.
"""

import math

from runners.engine.fields import Boolean, Integer, Number, Object, Problems

# Each arch's parameters; dropout rates stop short of 1, which drops everything.
PARAMS = {
    "seed_mlp": Object({"units": Integer(1, 4096, 64, label="units"),
                        "dropout": Number(0.0, 0.9, 0.2)}),
    "seed_cnn": Object({"filters": Integer(1, 1024, 32), "dense": Integer(1, 8192, 128),
                        "dropout": Number(0.0, 0.9, 0.5)}),
    "resnet": Object({"depth": Integer(1, 50, 3), "width": Integer(1, 512, 16),
                      "batch_norm": Boolean(True, label="BatchNorm")}),
    "uploaded": Object({}),
}
for _arch, _params in PARAMS.items():
    _params.label = f"the {_arch} parameters"  # "Unknown setting 'filters' for the ..."
ARCHS = {arch: params.defaults for arch, params in PARAMS.items()}
# Bounds by parameter name, for the form's fields.
PARAM_LIMITS = {key: field.bounds for params in PARAMS.values()
                for key, field in params.fields.items() if hasattr(field, "bounds")}

MAX_DOWNSAMPLES = 3
# Smallest image side each image arch accepts: the CNN pools twice (floor), so it needs 4
# pixels to keep one; the ResNet halves up to three times, which leaves one pixel of 8.
_MIN_SIDE = {"seed_cnn": 4, "resnet": 2**MAX_DOWNSAMPLES}


def resolve_params(arch, params=None):
    """The arch's parameters with defaults filled in; fields.Invalid (a ValueError) names the
    bad one."""
    if arch not in ARCHS:
        raise ValueError(f"unknown model arch {arch!r}; choose one of {', '.join(ARCHS)}")
    problems = Problems()
    resolved = PARAMS[arch].clean(dict(params or {}), "model.params", problems)
    problems.raise_if_any()
    return resolved


def facts(arch, params):
    """What the recipe checks need to know of a zoo model (techniques.ModelFacts' fields): the
    layer classes ``build_model`` makes, whether they form one chain, no nested models."""
    p = resolve_params(arch, params)
    if arch == "seed_mlp":
        layers = {"Flatten": 1, "Dense": 3, "Dropout": 2, "Activation": 1}
    elif arch == "seed_cnn":
        layers = {"Conv2D": 2, "MaxPooling2D": 2, "Flatten": 1, "Dense": 2, "Dropout": 1,
                  "Activation": 1}
    else:
        convs, channels = 1, p["width"]
        for _, out, stride in _resnet_blocks(p):
            convs += 3 + (stride != 1 or channels != out)
            channels = out
        layers = {"Conv2D": convs, "Add": p["depth"], "GlobalAveragePooling2D": 1, "Dense": 1,
                  "Activation": 2 + 3 * p["depth"]}
        if p["batch_norm"]:
            layers["BatchNormalization"] = convs
    return {"arch": arch, "layers": layers, "chain": arch != "resnet", "nested": False}


def check_input_shape(arch, params, input_shape):
    """ValueError with a readable reason when the arch cannot take samples of this shape."""
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input shape {list(shape)} is empty or has a zero dimension")
    if arch not in _MIN_SIDE:
        return
    side = _MIN_SIDE[arch]
    if len(shape) != 3:
        raise ValueError(
            f"{arch} needs image samples shaped (height, width, channels), but the data has "
            f"samples of shape {list(shape)}; use seed_mlp for flat feature vectors"
        )
    if shape[0] < side or shape[1] < side:
        raise ValueError(
            f"{arch} needs images of at least {side}x{side} pixels, but the data has "
            f"{shape[0]}x{shape[1]}"
        )


def count_params(arch, params, input_shape, num_classes):
    """All weights (trainable and not) of the model ``build_model`` would make, without Keras."""
    if arch == "uploaded":
        raise ValueError("an uploaded model's parameter count is known only after loading it")
    p = resolve_params(arch, params)
    check_input_shape(arch, p, input_shape)
    k = int(num_classes)
    if arch == "seed_mlp":
        u = p["units"]
        return _dense(math.prod(input_shape), u) + _dense(u, u) + _dense(u, k)
    if arch == "seed_cnn":
        h, w, c = input_shape
        f, d = p["filters"], p["dense"]
        flat = (h // 2 // 2) * (w // 2 // 2) * 2 * f
        return _conv(3, c, f) + _conv(3, f, 2 * f) + _dense(flat, d) + _dense(d, k)
    bn, total = p["batch_norm"], 0
    channels = p["width"]
    total += _conv(3, input_shape[2], channels, bias=not bn) + _bn(channels, bn)
    for mid, out, stride in _resnet_blocks(p):
        total += _conv(1, channels, mid, bias=not bn) + _bn(mid, bn)
        total += _conv(3, mid, mid, bias=not bn) + _bn(mid, bn)
        total += _conv(1, mid, out, bias=not bn) + _bn(out, bn)
        if stride != 1 or channels != out:
            total += _conv(1, channels, out, bias=not bn) + _bn(out, bn)
        channels = out
    return total + _dense(channels, k)


def build_model(model_spec, input_shape, num_classes):
    """A fresh (or loaded) Keras model; the global dtype policy must be set before calling."""
    import keras

    arch = model_spec["arch"]
    if arch == "uploaded":
        from runners.engine import modelfile

        # Checked again here (safe_mode, no Lambda, no custom objects): the file on disk is
        # only as trustworthy as the last check of it.
        return modelfile.load_for_training(model_spec["path"], input_shape, num_classes)
    p = resolve_params(arch, model_spec.get("params"))
    check_input_shape(arch, p, input_shape)
    inputs = keras.Input(tuple(input_shape))
    builder = {"seed_mlp": _seed_mlp, "seed_cnn": _seed_cnn, "resnet": _resnet}[arch]
    x = builder(keras.layers, inputs, p)
    x = keras.layers.Dense(num_classes, name="logits")(x)
    # Softmax in float32 so mixed-precision models still emit float32 probabilities.
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=arch)


def _seed_mlp(layers, x, p):
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(p["units"], activation="relu")(x)
        x = layers.Dropout(p["dropout"])(x)
    return x


def _seed_cnn(layers, x, p):
    for filters in (p["filters"], 2 * p["filters"]):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(p["dense"], activation="relu")(x)
    return layers.Dropout(p["dropout"])(x)


def _resnet(layers, x, p):
    bn = p["batch_norm"]

    def conv_bn(x, filters, size, stride=1, relu=True):
        x = layers.Conv2D(filters, size, strides=stride, padding="same", use_bias=not bn)(x)
        if bn:
            # Keras's default momentum of 0.99 leaves the moving statistics near their
            # initial values after the few hundred steps of a dashboard run, and inference
            # then collapses to one class; 0.9 (PyTorch's default) settles in time.
            x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.Activation("relu")(x) if relu else x

    x = conv_bn(x, p["width"], 3)
    for mid, out, stride in _resnet_blocks(p):
        shortcut = x
        if stride != 1 or x.shape[-1] != out:
            shortcut = conv_bn(x, out, 1, stride, relu=False)
        y = conv_bn(x, mid, 1)
        y = conv_bn(y, mid, 3, stride)
        y = conv_bn(y, out, 1, relu=False)
        x = layers.Activation("relu")(layers.Add()([shortcut, y]))
    return layers.GlobalAveragePooling2D()(x)


def _resnet_blocks(p):
    """(bottleneck filters, output filters, stride) per block.

    Like ResNet's stages: every second block halves the resolution and doubles the width, at
    most MAX_DOWNSAMPLES times, so deep settings add blocks rather than exploding in width.
    """
    blocks = []
    for i in range(p["depth"]):
        stage = min(i // 2, MAX_DOWNSAMPLES)
        stride = 2 if i > 0 and i % 2 == 0 and i // 2 <= MAX_DOWNSAMPLES else 1
        mid = p["width"] * 2**stage
        blocks.append((mid, 4 * mid, stride))
    return blocks


def _dense(inputs, units):
    return inputs * units + units


def _conv(size, cin, cout, bias=True):
    return size * size * cin * cout + (cout if bias else 0)


def _bn(channels, enabled):
    # gamma, beta, moving mean, moving variance
    return 4 * channels if enabled else 0
