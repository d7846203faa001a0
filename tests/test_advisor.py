"""The advisor's rules (runners.engine.advisor): the ones the form shows before a run and a
run copies into its result. Pure: no Django, no TensorFlow."""

import pytest

from runners.engine import advisor
from runners.engine.techniques.precision import XLA

PLAIN_CPU = {"hardware": "cpu", "cpu_flags": ["avx2", "fma"]}
FP16_CPU = {"hardware": "cpu", "cpu_flags": ["avx2", "avx512f", "avx512_fp16"]}
BF16_CPU = {"hardware": "cpu", "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]}
VNNI_CPU = {"hardware": "cpu", "cpu_flags": ["avx2", "avx512f", "avx512_vnni"]}
GPU = {"hardware": "gpu", "cpu_flags": ["avx2"], "gpus": [{"name": "H100"}]}


def techniques(steps, hardware, **kwargs):
    return [item["technique"] for item in advisor.advise(steps, hardware, **kwargs)]


def test_it_warns_of_mixed_float16_on_a_cpu_without_float16_arithmetic():
    [item] = advisor.advise([{"technique": "mixed_precision", "policy": "mixed_float16"}],
                            PLAIN_CPU)
    assert item["technique"] == "mixed_precision"
    assert "mixed_float16" in item["message"] and "avx512_fp16" in item["message"]


def test_it_says_nothing_of_mixed_float16_where_the_cpu_has_float16_units():
    assert advisor.advise([{"technique": "mixed_precision"}], FP16_CPU) == []


def test_it_checks_bfloat16_against_the_bfloat16_flags():
    step = {"technique": "mixed_precision", "policy": "mixed_bfloat16"}
    [item] = advisor.advise([step], FP16_CPU)
    assert "avx512_bf16" in item["message"] and "~8x" in item["message"]
    assert advisor.advise([step], BF16_CPU) == []


def test_it_says_nothing_of_mixed_precision_on_a_gpu():
    assert advisor.advise([{"technique": "mixed_precision"}], GPU) == []
    assert advisor.advise([{"technique": "mixed_precision"}], "gpu") == []


def test_it_warns_of_xla_on_a_tiny_model_on_a_cpu():
    [item] = advisor.advise([{"technique": "xla"}], PLAIN_CPU, params=9_050)
    assert "9,050 parameters" in item["message"]
    assert techniques(["xla"], FP16_CPU, params=XLA.tiny_params - 1) == ["xla"]


def test_it_says_nothing_of_xla_on_a_big_model_an_unknown_one_or_a_gpu():
    assert advisor.advise(["xla"], PLAIN_CPU, params=XLA.tiny_params) == []
    assert advisor.advise(["xla"], PLAIN_CPU, params=5_000_000) == []
    assert advisor.advise(["xla"], PLAIN_CPU) == []
    assert advisor.advise(["xla"], GPU, params=9_050) == []


@pytest.mark.parametrize("step", [
    {"technique": "ptq", "mode": "dynamic_int8"},
    {"technique": "ptq", "mode": "full_int8"},
    {"technique": "ptq"},
    {"technique": "keras_quantize", "mode": "int8"},
    {"technique": "qat"},
])
def test_it_warns_of_int8_on_a_cpu_without_int8_dot_products(step):
    [item] = advisor.advise([step], PLAIN_CPU)
    assert "int8" in item["message"] and "avx512_vnni" in item["message"]
    assert advisor.advise([step], VNNI_CPU) == []
    assert advisor.advise([step], GPU) == []


@pytest.mark.parametrize("step", [
    {"technique": "ptq", "mode": "float16"},
    {"technique": "keras_quantize", "mode": "int4"},
    {"technique": "pruning", "target_sparsity": 0.5},
    {"technique": "early_stop"},
])
def test_it_says_nothing_of_steps_without_a_rule(step):
    assert advisor.advise([step], PLAIN_CPU, params=9_050) == []


def test_it_advises_each_recipe_and_leaves_out_those_with_nothing_to_say():
    recipes = [
        {"name": "plain", "steps": [{"technique": "early_stop"}]},
        {"name": "fast", "steps": [{"technique": "mixed_precision"}, {"technique": "xla"}]},
        {"steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ]
    found = advisor.advise_recipes(recipes, PLAIN_CPU, params=9_050)
    assert [(r["index"], r["name"]) for r in found] == [(1, "fast"), (2, "ptq")]
    assert [item["technique"] for item in found[0]["advice"]] == ["mixed_precision", "xla"]
    assert advisor.advise_recipes(recipes, GPU, params=9_050) == []
    assert advisor.advise_recipes([], PLAIN_CPU) == []


def test_it_refuses_hardware_it_does_not_know():
    with pytest.raises(ValueError, match="cpu, gpu or a fingerprint"):
        advisor.advise(["xla"], "tpu")
