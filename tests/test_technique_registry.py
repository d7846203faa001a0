"""The technique package (runners.engine.techniques): its families found without an import
line each, its registry complete and in catalog order, and everything the web shows of a
technique read off its class. Pure: no framework is loaded."""

import pkgutil
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from engine_runs import ROOT

from experiments.forms import ExperimentFilterForm
from experiments.techniques import catalog, choices, presets, reference_markdown
from runners.engine import techniques
from runners.engine.techniques import TECHNIQUES, families, jit_compiled, quantizes


def test_it_loads_every_technique_without_a_framework():
    probe = ("import sys\n"
             "import runners.engine.techniques as techniques\n"
             "assert len(techniques.TECHNIQUES) >= 17, techniques.TECHNIQUES\n"
             "loaded = {'tensorflow', 'keras', 'jax', 'django'} & set(sys.modules)\n"
             "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True)


def test_it_finds_every_family_module_in_the_package():
    modules = {module.name for module in pkgutil.iter_modules(techniques.__path__)}
    assert set(families) == {name for name in modules
                             if name != "base" and not name.startswith("_")}
    assert {"parallelism", "precision", "quantization", "compression", "training"} <= \
        set(families)


def test_it_keeps_the_registry_in_family_order():
    positions = [module.ORDER for module in families.values()]
    assert positions == sorted(positions)
    ranks = [list(families).index(cls.family) for cls in TECHNIQUES.values()]
    assert ranks == sorted(ranks)
    assert [entry["technique"] for entry in catalog()] == list(TECHNIQUES)


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_each_technique_describes_itself(name):
    cls = TECHNIQUES[name]
    assert cls.technique == name
    assert cls.__module__ == f"runners.engine.techniques.{cls.family}"
    assert cls.label and cls.label != name.replace("_", " ")
    assert cls.help.endswith(".")
    # Every parameter has a default: a one-click preset is the technique alone.
    assert set(cls.defaults) == set(cls.fields)
    for params in cls.bench_params:
        cls.validate(params)  # raises on a parameter the class would refuse
    for _, params in cls.presets:
        cls.validate(params)  # raises on a parameter the class would refuse


def test_it_refuses_a_second_technique_of_the_same_name():
    class Twin(techniques.TechniqueStep):
        technique = "xla"

    with pytest.raises(ValueError, match="a name of its own"):
        techniques.register(Twin)
    assert TECHNIQUES["xla"].__name__ == "XLA"


def test_it_reads_quantizing_and_jit_from_the_classes():
    assert {name for name in TECHNIQUES if quantizes(name)} == {"ptq", "keras_quantize", "qat"}
    assert not quantizes("a technique of an older engine") and not quantizes(None)
    assert jit_compiled(["optimizer", "xla"]) and not jit_compiled(["optimizer", "ptq"])
    assert not jit_compiled([None, "gone"])


def test_it_offers_each_class_label_in_the_form_and_its_filter():
    form = ExperimentFilterForm({}, authors=[])
    assert form.fields["technique"].choices[1:] == choices() == [
        (name, cls.label) for name, cls in TECHNIQUES.items()]
    keys = {preset["key"] for preset in presets()}
    assert {"ptq-dynamic_int8", "ptq-float16", "ptq-full_int8", "xla"} <= keys
    assert "ptq" not in keys


def test_the_techniques_command_prints_every_technique_from_its_class():
    out = StringIO()
    call_command("techniques", stdout=out)
    printed = out.getvalue()
    assert printed.strip() == reference_markdown().strip()
    for name, cls in TECHNIQUES.items():
        [row] = [line for line in printed.splitlines() if line.startswith(f"| `{name}` |")]
        assert cls.label in row and cls.help in row
        for param in cls.fields:
            assert f"`{param}`" in row
    assert "`ptq` | Post-training quantization | `mode` dynamic_int8 \\| float16 \\| " \
           "full_int8, default \"dynamic_int8\"; `representative_samples` [1, 10,000]" in printed
    for family in families:
        assert f"`runners/engine/techniques/{family}.py`" in printed
