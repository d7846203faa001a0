"""Warnings for techniques known to slow the chosen hardware down.  Pure: no framework import.

The web shows them in the form before a run; the engine copies them into the result, and the
web checks each against the measured speedup over the baseline.  The rules live on the
technique classes (``TechniqueStep.advise``), measured on the project's machines (DESIGN.md):
mixed precision without 16-bit float units, XLA on tiny models on a CPU, int8 without int8
dot-product instructions.  This module holds the loop over a recipe and the hardware facts
the rules ask about.
"""

from dataclasses import dataclass

from runners.engine.techniques import TECHNIQUES

FLOAT16_FLAGS = ("avx512_fp16", "amx_fp16")
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class Machine:
    """What a technique's advise() may ask of the hardware: its kind ("cpu" or "gpu") and
    the CPU's flags, with the flags that give 16-bit float and int8 dot-product units."""

    kind: str
    flags: frozenset

    FLOAT16_FLAGS = FLOAT16_FLAGS
    BFLOAT16_FLAGS = BFLOAT16_FLAGS
    INT8_DOT_FLAGS = INT8_DOT_FLAGS

    def has_any(self, flags):
        return bool(self.flags & set(flags))


def advise(steps, fingerprint_or_hardware, *, params=None):
    """[{technique, message}] for the recipe's steps on this hardware.

    ``steps``: step dicts (``{"technique": ..., params}``) or technique names.
    ``fingerprint_or_hardware``: a result's fingerprint (uses ``cpu_flags`` and ``gpus``), or
    "cpu" / "gpu" for the machine this runs on.  ``params``: the model's parameter count when
    known (the XLA rule needs it).
    """
    return _advise(steps, _machine(fingerprint_or_hardware), params)


def advise_recipes(recipes, fingerprint_or_hardware, *, params=None):
    """[{index, name, advice}] for each recipe (``{"name", "steps"}``) with something to
    say, in the spec's order; [] when there is nothing. Same arguments as ``advise``."""
    machine = _machine(fingerprint_or_hardware)
    found = []
    for index, recipe in enumerate(recipes):
        steps = recipe.get("steps") or []
        advice = _advise(steps, machine, params)
        if advice:
            name = recipe.get("name") or " + ".join(
                str(step.get("technique") if isinstance(step, dict) else step)
                for step in steps)
            found.append({"index": index, "name": name, "advice": advice})
    return found


def _advise(steps, machine, params):
    advice = []
    for step in steps:
        step = {"technique": step} if isinstance(step, str) else step
        name = step.get("technique")
        cls = TECHNIQUES.get(name) if isinstance(name, str) else None
        if cls is None:
            continue
        given = {key: value for key, value in step.items() if key != "technique"}
        message = cls.advise({**cls.defaults, **given}, machine, params)
        if message:
            advice.append({"technique": name, "message": message})
    return advice


def _machine(value):
    if isinstance(value, dict):
        flags = frozenset(value.get("cpu_flags") or ())
        # A result's fingerprint: a run on a GPU machine has gpus listed, but the run used a
        # GPU only if the backend saw one; the web passes hardware for the form.
        return Machine("gpu" if value.get("hardware") == "gpu" else "cpu", flags)
    if value not in ("cpu", "gpu"):
        raise ValueError(f"hardware must be cpu, gpu or a fingerprint, not {value!r}")
    from runners.engine.fingerprint import cpu_flags

    return Machine(value, frozenset(cpu_flags()))
