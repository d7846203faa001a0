"""Warnings for techniques known to slow the chosen hardware down.  Pure: no framework import.

The web shows them in the form before a run; the engine copies them into the result, and the
web checks each against the measured speedup over the baseline.  The rules are the ones
measured on the project's machines (DESIGN.md): mixed precision without 16-bit float units,
XLA on tiny models on a CPU, int8 without int8 dot-product instructions.
"""

FLOAT16_FLAGS = ("avx512_fp16", "amx_fp16")
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# Below this many parameters XLA's compile time and fused-kernel launch savings rarely pay
# on a CPU (seed models: ~0.1M; XLA helped a CIFAR-size CNN, slowed the digits MLP).
XLA_TINY_PARAMS = 1_000_000


def advise(steps, fingerprint_or_hardware, *, params=None):
    """[{technique, message}] for the recipe's steps on this hardware.

    ``steps``: step dicts (``{"technique": ..., params}``) or technique names.
    ``fingerprint_or_hardware``: a result's fingerprint (uses ``cpu_flags`` and ``gpus``), or
    "cpu" / "gpu" for the machine this runs on.  ``params``: the model's parameter count when
    known (the XLA rule needs it).
    """
    hardware, flags = _hardware(fingerprint_or_hardware)
    return _advise(steps, hardware, flags, params)


def advise_recipes(recipes, fingerprint_or_hardware, *, params=None):
    """[{index, name, advice}] for each recipe (``{"name", "steps"}``) with something to
    say, in the spec's order; [] when there is nothing. Same arguments as ``advise``."""
    hardware, flags = _hardware(fingerprint_or_hardware)
    found = []
    for index, recipe in enumerate(recipes):
        steps = recipe.get("steps") or []
        advice = _advise(steps, hardware, flags, params)
        if advice:
            name = recipe.get("name") or " + ".join(
                str(step.get("technique") if isinstance(step, dict) else step)
                for step in steps)
            found.append({"index": index, "name": name, "advice": advice})
    return found


def _advise(steps, hardware, flags, params):
    advice = []
    for step in steps:
        step = {"technique": step} if isinstance(step, str) else step
        name = step.get("technique")
        message = _advice_for(name, step, hardware, flags, params)
        if message:
            advice.append({"technique": name, "message": message})
    return advice


def _advice_for(name, step, hardware, flags, params):
    if hardware != "cpu":
        return None
    if name == "mixed_precision":
        policy = step.get("policy", "mixed_float16")
        wanted = BFLOAT16_FLAGS if policy == "mixed_bfloat16" else FLOAT16_FLAGS
        kind = "bfloat16" if policy == "mixed_bfloat16" else "float16"
        if not flags & set(wanted):
            return (f"{policy} on a CPU without {kind} arithmetic ({' / '.join(wanted)} "
                    "absent): every 16-bit op is emulated, so training is expected to be slower "
                    "than float32 (2x for float16, ~8x for bfloat16 measured here)")
    if name == "xla" and params is not None and params < XLA_TINY_PARAMS:
        return (f"XLA on a tiny model ({params:,} parameters) on a CPU: compilation costs "
                "seconds and there is little to fuse, so it may not pay off")
    if _is_int8(name, step) and not flags & set(INT8_DOT_FLAGS):
        return ("int8 on a CPU without int8 dot-product instructions "
                f"({' / '.join(INT8_DOT_FLAGS)} absent): expect ~4x smaller weights but "
                "little or no speedup")
    return None


def _is_int8(name, step):
    if name == "ptq":
        return step.get("mode", "dynamic_int8") in ("dynamic_int8", "full_int8")
    if name == "keras_quantize":
        return step.get("mode", "int8") == "int8"
    return name == "qat"


def _hardware(value):
    if isinstance(value, dict):
        flags = set(value.get("cpu_flags") or ())
        # A result's fingerprint: a run on a GPU machine has gpus listed, but the run used a
        # GPU only if the backend saw one; the web passes hardware for the form.
        return ("gpu" if value.get("hardware") == "gpu" else "cpu"), flags
    if value not in ("cpu", "gpu"):
        raise ValueError(f"hardware must be cpu, gpu or a fingerprint, not {value!r}")
    from runners.engine.fingerprint import cpu_flags

    return value, set(cpu_flags())
