"""Uploaded .keras models: checked as data before Keras sees them, then loaded in safe mode.

What Keras 3.15's ``safe_mode=True`` blocks on its own: a Lambda holding Python bytecode,
TFSMLayer, TorchModuleWrapper, lookup vocabularies read from files, and non-modeling Keras
APIs; an unregistered custom class fails to resolve. What it lets through: a Lambda that
wraps a Keras function, and any custom class that happens to be registered in the loading
process. So ``check_archive`` reads the archive as zip and JSON first (no Keras, cheap
enough for the web process): it refuses an archive with too many members or too much
unpacked data from the zip's directory, before any member is read, then every Lambda and
every object that is not a built-in Keras one; ``load`` repeats that check and also refuses
HDF5 weights that point outside the archive (external links, virtual or external datasets)
before calling ``keras.saving.load_model(path, safe_mode=True, compile=False)``.

``python -m runners inspect-model PATH`` runs ``inspect`` in a process of its own, so the
web never imports TensorFlow; ``runners.process.inspect_model`` limits that process's
memory and removes its temporary files.
"""

import io
import json
import os
import struct
import zipfile

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS_H5 = "model.weights.h5"
WEIGHTS_NPZ = "model.weights.npz"
MEMBERS = {CONFIG, METADATA, WEIGHTS_H5, WEIGHTS_NPZ}
MAX_CONFIG_BYTES = 5 * 1024 * 1024
# Keras stores members uncompressed; anything far larger unpacked than packed is a bomb.
MAX_EXPANSION = 20
MIN_BOMB_BYTES = 64 * 1024 * 1024
# model.save() writes three members plus one per asset file; a model with thousands of
# assets is not one AccelWeb trains. Counted from the zip's end record, before zipfile
# builds an object for every member (100,000 of them cost it 60 MB and 0.7 s).
MAX_MEMBERS = 10_000
# All members unpacked, assets included (what Keras extracts to a temporary directory):
# five times the default upload limit of 200 MB.
MAX_UNPACKED_BYTES = 1024**3
# A central directory entry is 46 bytes plus its name, extra field and comment; more than
# this on average is not a directory that zipfile should parse.
MAX_DIRECTORY_BYTES_PER_MEMBER = 1024
# The layouts of the zip format's end records (APPNOTE.TXT 4.3.14 to 4.3.16).
END_RECORD = "<4s4H2LH"
ZIP64_LOCATOR = "<4sLQL"
ZIP64_END_RECORD = "<4sQ2H2L4Q"
MAX_NESTING = 200

LAMBDA_CLASSES = {"Lambda", "__lambda__"}
# Built into Keras, but each wraps code or files from outside the archive.
FOREIGN_WRAPPERS = {"TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
# The config markers Keras itself writes for values that are not objects.
SPECIAL_CLASSES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__",
                   "__ellipsis__", "__slice__"}


class ModelFileError(ValueError):
    """The upload is not a model AccelWeb will load; the message is for the user."""


def check_archive(path, *, name=None):
    """Check a .keras file without Keras and return its parsed config.json.

    The member count and the unpacked sizes come from the zip's directory, so an archive
    over the limits is refused before any member is read or extracted."""
    name = name or os.path.basename(path)
    directory = zip_directory(path)
    if directory is None:
        raise ModelFileError(
            f"{name} is not a .keras model: it is not a zip archive. Save the model with "
            "model.save('model.keras') (the native Keras format).")
    check_directory(name, directory, MAX_MEMBERS, ModelFileError)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            if CONFIG not in names:
                raise ModelFileError(
                    f"{name} is not a native .keras model: the archive has no config.json.")
            for info in infos:
                _check_member(name, info)
            _check_members(name, infos)
            raw = archive.read(CONFIG)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        raise ModelFileError(f"{name} is not a readable .keras archive ({exc}).") from None
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{name} is not a .keras model: its config.json is not JSON.") \
            from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{name} is not a .keras model: config.json describes no model.")
    check_config(config)
    return config


def zip_directory(path):
    """(member count, central directory bytes) from a zip's end record, or None when there
    is no end record. Reads the end of the file only: nothing is parsed per member."""
    end_size, locator_size = struct.calcsize(END_RECORD), struct.calcsize(ZIP64_LOCATOR)
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        # The end record closes the file, followed only by a comment of up to 64 KiB.
        start = max(0, size - end_size - 0xFFFF)
        f.seek(start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < end_size:
            return None
        record = struct.unpack(END_RECORD, tail[at:at + end_size])
        count, directory_bytes = record[4], record[5]
        if count != 0xFFFF and directory_bytes != 0xFFFFFFFF:
            return count, directory_bytes
        # Zip64 (more than 65,535 members, or a directory over 4 GiB): its own end record.
        locator = tail[at - locator_size:at] if at >= locator_size else b""
        if len(locator) != locator_size or not locator.startswith(b"PK\x06\x07"):
            return None
        f.seek(struct.unpack(ZIP64_LOCATOR, locator)[2])
        record64 = f.read(struct.calcsize(ZIP64_END_RECORD))
        if len(record64) != struct.calcsize(ZIP64_END_RECORD) \
                or not record64.startswith(b"PK\x06\x06"):
            return None
        record64 = struct.unpack(ZIP64_END_RECORD, record64)
        return record64[7], record64[8]


def check_directory(name, directory, max_members, error=ValueError):
    """Refuse an archive with too many members, read from zip_directory, before zipfile
    parses the directory."""
    count, directory_bytes = directory
    if count > max_members:
        raise error(f"{name} holds {count:,} members; the limit is {max_members:,}.")
    if directory_bytes > max_members * MAX_DIRECTORY_BYTES_PER_MEMBER:
        raise error(f"{name} has a {directory_bytes:,}-byte list of members; the limit is "
                    f"{max_members * MAX_DIRECTORY_BYTES_PER_MEMBER:,}.")


def _check_members(name, infos):
    """Refuse the archive as a whole: too many members, or too much unpacked data."""
    # The end record only claims a count; the directory zipfile read is what holds.
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{name} holds {len(infos):,} members; the limit is "
                             f"{MAX_MEMBERS:,}.")
    unpacked = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise ModelFileError(
            f"{name} unpacks to {unpacked:,} bytes; the limit is {MAX_UNPACKED_BYTES:,} "
            f"({MAX_UNPACKED_BYTES / 1024**3:g} GiB).")
    # Many members each just under the per-member bomb size add up to one bomb.
    if unpacked > MIN_BOMB_BYTES and unpacked > MAX_EXPANSION * packed:
        raise ModelFileError(
            f"{name} unpacks to {unpacked:,} bytes from {packed:,}; AccelWeb refuses "
            "archives that expand that much.")


def _check_member(name, info):
    member = info.filename
    allowed = member in MEMBERS or (member.startswith("assets/") and ".." not in member
                                    and not member.startswith("/"))
    if not allowed:
        raise ModelFileError(
            f"{name} is not a native .keras model: it holds {member!r}, which model.save() "
            "never writes.")
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{name} holds an encrypted member ({member}).")
    if member == CONFIG and info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{name}: config.json is {info.file_size:,} bytes; "
                             f"the limit is {MAX_CONFIG_BYTES:,}.")
    if info.file_size > MIN_BOMB_BYTES and info.file_size > MAX_EXPANSION * info.compress_size:
        raise ModelFileError(
            f"{name}: {member} unpacks to {info.file_size:,} bytes from "
            f"{info.compress_size:,}; AccelWeb refuses archives that expand that much.")


def check_config(node, depth=0):
    """Refuse a Lambda, a wrapper of foreign code, and any object Keras does not define."""
    if depth > MAX_NESTING:
        raise ModelFileError("The model's config.json is nested too deeply to be a Keras model.")
    if isinstance(node, list):
        for item in node:
            check_config(item, depth + 1)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if class_name is not None:
        _check_object(node, class_name)
    for value in node.values():
        check_config(value, depth + 1)


def _check_object(node, class_name):
    config = node.get("config")
    layer = config.get("name") if isinstance(config, dict) else None
    named = f" (layer {layer!r})" if isinstance(layer, str) else ""
    if class_name in LAMBDA_CLASSES:
        raise ModelFileError(
            f"This model contains a Lambda layer, which AccelWeb refuses to load: a Lambda "
            f"layer can run arbitrary Python code{named}. Rebuild the model from built-in "
            "Keras layers.")
    if class_name in FOREIGN_WRAPPERS:
        raise ModelFileError(
            f"This model contains a {class_name}{named}, which AccelWeb refuses to load: it "
            "wraps code or files from outside the .keras archive.")
    if not isinstance(class_name, str):
        raise ModelFileError("The model's config.json holds an object with no class name.")
    if class_name.startswith("__"):
        if class_name not in SPECIAL_CLASSES:
            raise ModelFileError(f"The model's config.json holds an unknown marker {class_name!r}.")
        return
    if isinstance(config, dict) and isinstance(config.get("vocabulary"), str):
        raise ModelFileError(
            f"This model's {class_name}{named} reads its vocabulary from a file, which "
            "AccelWeb refuses: the vocabulary must be stored in the model.")
    module = node.get("module", "keras")
    registered = node.get("registered_name")
    builtin_function = class_name == "function" and module == "builtins"
    keras_module = isinstance(module, str) and (module == "keras" or module.startswith("keras."))
    custom_name = isinstance(registered, str) and ">" in registered
    if custom_name or not (keras_module or builtin_function):
        where = registered if isinstance(registered, str) else (module or "no module")
        raise ModelFileError(
            f"This model uses {class_name!r} ({where}), which is not a built-in Keras object; "
            "AccelWeb refuses to load custom code. Rebuild the model from built-in Keras "
            "layers, activations and initializers.")


def check_weights(path, *, name=None):
    """Refuse HDF5 weights that reach outside the archive. Needs h5py (a Keras dependency)."""
    import h5py

    name = name or os.path.basename(path)
    with zipfile.ZipFile(path) as archive:
        if WEIGHTS_H5 not in archive.namelist():
            return
        content = io.BytesIO(archive.read(WEIGHTS_H5))
    problems = []

    def link(key, found):
        if isinstance(found, (h5py.ExternalLink, h5py.SoftLink)):
            problems.append(f"{key} is a link")

    def dataset(key, found):
        if isinstance(found, h5py.Dataset) and (found.is_virtual or found.external):
            problems.append(f"{key} stores its data outside the file")

    try:
        with h5py.File(content, "r") as weights:
            weights.visititems_links(link)
            if not problems:
                weights.visititems(dataset)
    except OSError as exc:
        raise ModelFileError(f"{name}: the weights file is not readable HDF5 ({exc}).") \
            from None
    if problems:
        raise ModelFileError(
            f"{name}: the weights point outside the archive ({problems[0]}); AccelWeb "
            "refuses to load them.")


def load(path, *, name=None):
    """The checked model, loaded with safe_mode and not compiled."""
    check_archive(path, name=name)
    check_weights(path, name=name)
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        text = " ".join(str(exc).split())[:500]
        raise ModelFileError(f"Keras could not load {name or os.path.basename(path)} "
                             f"in safe mode: {text}") from None


def describe(model):
    """Input shape (no batch axis), classes, parameters and layers of a classifier."""
    import keras

    if len(model.inputs or []) != 1 or len(model.outputs or []) != 1:
        raise ModelFileError("The model must have exactly one input and one output.")
    input_shape = list(model.inputs[0].shape[1:])
    if not input_shape or any(d is None for d in input_shape):
        raise ModelFileError(
            f"The model's input shape {_shape(input_shape)} is not fixed; save it with a "
            "fully specified keras.Input(shape=...).")
    output_shape = list(model.outputs[0].shape)
    if len(output_shape) != 2 or output_shape[1] is None or output_shape[1] < 2:
        raise ModelFileError(
            f"The model's output has shape {_shape(output_shape[1:])}; AccelWeb trains "
            "classifiers, whose output is one score per class (at least 2 units).")
    kind = output_kind(keras, output_layer(model))
    if kind not in ("softmax", "logits"):
        raise ModelFileError(
            f"The model's output layer uses the {kind} activation; AccelWeb trains "
            "classifiers whose output is softmax probabilities or logits (no activation).")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return {
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(output_shape[1]),
        "params": int(model.count_params()),
        "layers": len(layers),
        "output": kind,
        "facts": facts(model),
    }


def facts(model):
    """What the recipe checks need to know of a model before a run (techniques.ModelFacts): its
    layer classes, nested models' included, whether it is one straight chain, and whether it
    nests models."""
    import keras

    counted = {}

    def count(outer):
        for layer in outer.layers:
            if isinstance(layer, keras.Model):
                count(layer)
            name = layer.__class__.__name__
            if name != "InputLayer":
                counted[name] = counted.get(name, 0) + 1

    count(model)
    nested = any(isinstance(layer, keras.Model) for layer in model.layers)
    return {"arch": "uploaded", "layers": counted, "chain": straight_chain(model) is not None,
            "nested": nested}


def straight_chain(model):
    """The layers of a model that is one straight chain, inputs first; None when it
    branches (a layer used twice, or fed by anything but the layer before it)."""
    import keras

    layers = [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    if isinstance(model, keras.Sequential):
        # A chain by construction; once loaded, its layers hold a node per rebuild.
        return layers
    previous = model.inputs[0] if len(model.inputs) == 1 else None
    for layer in layers:
        if previous is None or len(layer._inbound_nodes) != 1 or layer.input is not previous:
            return None
        previous = layer.output
    return layers


def inspect(path, *, name=None):
    return describe(load(path, name=name))


def load_for_training(path, input_shape, num_classes):
    """The uploaded model for a run: checked against the data, with probabilities out.

    A logits model gets a float32 softmax on top, so every model meets the engine's one
    loss (sparse categorical cross-entropy on probabilities)."""
    import keras

    model = load(path)
    found = describe(model)
    if found["input_shape"] != [int(d) for d in input_shape]:
        raise ModelFileError(
            f"the uploaded model takes samples of shape {_shape(found['input_shape'])}, but "
            f"the data has samples of shape {_shape(input_shape)}")
    if found["num_classes"] != int(num_classes):
        raise ModelFileError(
            f"the uploaded model has {found['num_classes']} output units, but the data has "
            f"{num_classes} classes")
    policy = keras.config.dtype_policy().name
    if policy != "float32":
        # Saved layers keep the dtype policy they were saved with; the global one that a
        # mixed_precision step set would not reach them without a rebuild.
        model = _with_policy(model, policy)
    if found["output"] == "softmax" and model.outputs[0].dtype == "float32":
        return model
    # Probabilities in float32 (as the zoo's models emit them), from a softmax on logits or
    # a cast of 16-bit probabilities.
    activation = "softmax" if found["output"] == "logits" else "linear"
    probabilities = keras.layers.Activation(activation, dtype="float32",
                                            name="accelweb_probabilities")(model.outputs[0])
    return keras.Model(model.inputs, probabilities, name=model.name)


def _with_policy(model, policy):
    def swap(node):
        if isinstance(node, list):
            return [swap(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            return {**node, "config": {**node["config"], "name": policy}}
        return {key: swap(value) for key, value in node.items()}

    rebuilt = model.__class__.from_config(swap(model.get_config()))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def output_layer(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    operation = getattr(history, "operation", None)
    return operation if operation is not None else model.layers[-1]


def output_kind(keras, layer):
    """"softmax", "logits" (no activation), or the name of another activation."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "logits"
    name = getattr(activation, "__name__", str(activation))
    return {"softmax": "softmax", "linear": "logits"}.get(name, name)


def _shape(dims):
    return "x".join("?" if d is None else str(d) for d in dims) or "()"
