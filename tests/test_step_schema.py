"""Each technique's parameter fields, recipe-wide rules and model rules, checked without a
framework: what the door refuses must be what the engine would refuse at run time."""

import re

import pytest
from jsonschema import Draft202012Validator

from runners.engine import fields, techniques
from runners.engine.techniques import (
    TECHNIQUES,
    ModelFacts,
    check_applicable,
    check_steps,
    validate_step,
)

BOUNDED = [(name, key, field) for name, cls in TECHNIQUES.items()
           for key, field in cls.fields.items()
           if isinstance(field, (fields.Integer, fields.Number))]
CHOICES = [(name, key, field) for name, cls in TECHNIQUES.items()
           for key, field in cls.fields.items() if isinstance(field, fields.Choice)]
FLAGS = [(name, key) for name, cls in TECHNIQUES.items()
         for key, field in cls.fields.items() if isinstance(field, fields.Boolean)]


# What a parameter needs beside it to be valid at its bounds (rules across parameters).
COMPANIONS = {("pruning", "begin"): {"end": 1}, ("early_stop", "target_val_accuracy"):
              {"patience": 3}}


def outside(field):
    """A value just past each bound: below the low one (the low one itself when it is
    exclusive) and above the high one."""
    if isinstance(field, fields.Integer):
        return [field.low - 1, field.high + 1]
    return [field.low if field.above else field.low - 0.5,
            field.high if field.below else field.high + 0.5]


def inside(field):
    """The bounds themselves where they are inclusive, just inside them where not."""
    if isinstance(field, fields.Integer):
        return [field.low, field.high]
    return [field.low + 0.01 if field.above else field.low,
            field.high - 0.01 if field.below else field.high]


def label(technique, key):
    return f"The {technique} {key}"


def refusal(step):
    with pytest.raises(ValueError) as caught:
        validate_step(step)
    return str(caught.value)


def schema_of(name):
    return fields.Object(TECHNIQUES[name].fields).json_schema()


def test_it_registers_every_technique_with_fields_not_choices():
    for cls in TECHNIQUES.values():
        assert not hasattr(cls, "choices"), cls.technique
        assert set(cls.defaults) == set(cls.fields)


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_it_fills_the_defaults_and_takes_them_back(name):
    filled = validate_step({"technique": name})
    assert filled == {"technique": name, **TECHNIQUES[name].defaults}
    assert validate_step(filled) == filled
    assert TECHNIQUES[name](**TECHNIQUES[name].defaults).params == TECHNIQUES[name].defaults


@pytest.mark.parametrize("name, key, field", BOUNDED, ids=[f"{n}.{k}" for n, k, _ in BOUNDED])
def test_it_refuses_a_value_past_either_bound_naming_the_technique(name, key, field):
    for value in outside(field):
        message = refusal({"technique": name, key: value})
        assert f"{label(name, key)} must be " in message, message
        assert f"(got {value:g})" in message or f"(got {value:,})" in message, message
    for value in inside(field):
        step = {"technique": name, **COMPANIONS.get((name, key), {}), key: value}
        assert validate_step(step)[key] == value


@pytest.mark.parametrize("name, key, field", BOUNDED, ids=[f"{n}.{k}" for n, k, _ in BOUNDED])
def test_it_refuses_a_value_of_the_wrong_type(name, key, field):
    kind = "an integer" if isinstance(field, fields.Integer) else "a number"
    for value in ("3", True, [1]):
        assert f"{label(name, key)} must be {kind}." in refusal({"technique": name, key: value})
    if isinstance(field, fields.Integer):
        # A whole number written 2.0 is the integer 2, as JSON Schema has it; the engine's
        # range() and slicing get an int.
        step = {"technique": name, **COMPANIONS.get((name, key), {}), key: field.low + 1.0}
        assert type(validate_step(step)[key]) is int
        assert "must be an integer." in refusal({"technique": name, key: field.low + 0.5})
    null = {"technique": name, **COMPANIONS.get((name, key), {}), key: None}
    if field.nullable:
        assert validate_step(null)[key] is None
    else:
        assert f"{label(name, key)} must be {kind}." in refusal(null)


@pytest.mark.parametrize("name, key, field", CHOICES, ids=[f"{n}.{k}" for n, k, _ in CHOICES])
def test_it_offers_the_choices_of_a_choice(name, key, field):
    message = refusal({"technique": name, key: "warp"})
    assert f"{label(name, key)} must be one of {', '.join(field.options)}." in message
    for option in field.options:
        assert validate_step({"technique": name, key: option})[key] == option


@pytest.mark.parametrize("name, key", FLAGS)
def test_it_wants_true_or_false_for_a_flag(name, key):
    assert f"{label(name, key)} must be true or false." in refusal(
        {"technique": name, key: "yes"})


def test_it_suggests_the_parameter_meant():
    message = refusal({"technique": "pruning", "target_sparsty": 0.5})
    assert message.startswith("Unknown setting 'target_sparsty'")
    assert "(did you mean 'target_sparsity'?); it takes target_sparsity, schedule, " in message
    assert "did you mean" not in refusal({"technique": "xla", "warp": 1})
    assert "it takes no settings" in refusal({"technique": "xla", "warp": 1})


def test_it_checks_the_rules_across_parameters():
    assert "The data_parallel replicas must equal the number of devices (got 3 for 1 device)." \
        in refusal({"technique": "data_parallel", "replicas": 3, "devices": ["/gpu:0"]})
    assert validate_step({"technique": "data_parallel", "replicas": 2,
                          "devices": [" /gpu:0", "/gpu:1"]})["devices"] == ["/gpu:0", "/gpu:1"]
    assert "A data_parallel device name cannot be empty." in refusal(
        {"technique": "data_parallel", "devices": ["/gpu:0", " "]})
    assert "The data_parallel devices must have 1 to 64 items (got 0)." in refusal(
        {"technique": "data_parallel", "devices": []})
    assert "must have 1 to 64 items (got 65)" in refusal(
        {"technique": "data_parallel", "devices": [f"/cpu:{i}" for i in range(65)]})
    assert "The pruning begin must not come after end (got 0.8 and 0.2)." in refusal(
        {"technique": "pruning", "begin": 0.8, "end": 0.2})
    assert "The pruning begin_step must not come after end_step (got 500 and 100)." in refusal(
        {"technique": "pruning", "begin_step": 500, "end_step": 100})
    assert validate_step({"technique": "pruning", "begin_step": 100, "end_step": 100})
    assert "The early_stop step needs target_val_accuracy, patience or both." in refusal(
        {"technique": "early_stop", "target_val_accuracy": None})
    assert validate_step({"technique": "early_stop", "target_val_accuracy": None,
                          "patience": 3})["patience"] == 3


def test_it_says_how_long_an_integer_past_floats_range_is():
    assert "(got an integer of 401 digits)" in refusal({"technique": "lr_schedule",
                                                        "factor": 10**400})


# --- Model rules (applies_to) ---------------------------------------------------------------

DENSE_ONLY = {"InputLayer": 1, "Dense": 2}
CONV_ONLY = {"Conv2D": 2, "Flatten": 1}
NOTHING = {"Flatten": 1, "Activation": 1}

# step, layers it applies to, layers it does not, the refusal's text
LAYER_RULES = [
    ({"technique": "keras_quantize"}, DENSE_ONLY, CONV_ONLY,
     "The keras_quantize int8 step quantizes only Dense, EinsumDense or Embedding layers; "
     "m has none."),
    ({"technique": "keras_quantize", "mode": "int4"}, {"Embedding": 1}, NOTHING,
     "The keras_quantize int4 step quantizes only Dense, EinsumDense or Embedding layers"),
    ({"technique": "keras_quantize", "mode": "float8"}, {"EinsumDense": 1}, {"Embedding": 1},
     "The keras_quantize float8 step quantizes only Dense or EinsumDense layers; m has none."),
    ({"technique": "pruning"}, CONV_ONLY, NOTHING,
     "The pruning step prunes Dense and convolution kernels (Dense, Conv1D, Conv2D, Conv3D); "
     "m has none."),
    ({"technique": "pruning", "structure": "2:4"}, {"Conv3D": 1}, {"DepthwiseConv2D": 1},
     "The pruning step prunes Dense and convolution kernels"),
    ({"technique": "clustering"}, {"Conv1D": 1}, NOTHING,
     "The clustering step clusters Dense and convolution kernels (Dense, Conv1D, Conv2D, "
     "Conv3D); m has none."),
    ({"technique": "regularization", "dropout": 0.3}, {"Dense": 1, "Dropout": 1}, DENSE_ONLY,
     "The regularization dropout sets the rate of the Dropout layers; m has none (leave "
     "dropout null)."),
]


@pytest.mark.parametrize("step, has, lacks, message", LAYER_RULES,
                         ids=[str(rule[0]) for rule in LAYER_RULES])
def test_it_refuses_a_step_the_models_layers_cannot_take(step, has, lacks, message):
    cls, params = TECHNIQUES[step["technique"]], validate_step(step)
    del params["technique"]
    assert cls.applies_to(params, ModelFacts("m", layers=has)) is None
    assert cls.applies_to(params, ModelFacts("m", layers=lacks)).startswith(message)
    # A layer listed with a count of 0 is absent.
    assert cls.applies_to(params, ModelFacts("m", layers={k: 0 for k in has})).startswith(
        message)
    assert cls.applies_to(params, ModelFacts("m")) is None


def test_it_leaves_dropout_alone_when_regularization_sets_none():
    assert TECHNIQUES["regularization"].applies_to(
        {"l2": 0.01, "dropout": None}, ModelFacts("m", layers=DENSE_ONLY)) is None


@pytest.mark.parametrize("name", ["batch_norm", "model_parallel"])
def test_it_refuses_to_rebuild_a_model_with_branches(name):
    cls = TECHNIQUES[name]
    assert cls.applies_to(cls.defaults, ModelFacts("resnet", chain=False)) == (
        f"The {name} step rebuilds models layer by layer and needs a straight chain of "
        "layers; resnet has branches.")
    assert cls.applies_to(cls.defaults, ModelFacts("seed_cnn", chain=True)) is None
    assert cls.applies_to(cls.defaults, ModelFacts("upload")) is None


def test_it_refuses_qat_on_a_model_that_nests_models():
    qat = TECHNIQUES["qat"]
    assert qat.applies_to(qat.defaults, ModelFacts("upload", nested=True)) == (
        "The qat step supports models without nested models; upload nests one.")
    assert qat.applies_to(qat.defaults, ModelFacts("upload", nested=False)) is None
    assert qat.applies_to(qat.defaults, ModelFacts("upload")) is None


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_it_never_refuses_on_unknown_facts(name):
    cls = TECHNIQUES[name]
    params = {**cls.defaults, **({"dropout": 0.5} if name == "regularization" else {})}
    assert cls.applies_to(params, ModelFacts("upload")) is None
    # The facts of the zoo's MLP satisfy every technique.
    mlp = ModelFacts("seed_mlp", layers={"InputLayer": 1, "Dense": 3, "Dropout": 2},
                     chain=True, nested=False)
    assert cls.applies_to(params, mlp) is None


# --- The recipe as a whole (check_steps) ----------------------------------------------------


def recipe_problems(recipe, model=None):
    problems = fields.Problems()
    cleaned = check_steps(recipe, "steps", problems)
    if model is not None and cleaned is not fields.INVALID:
        check_applicable(cleaned, "steps", problems, model)
    return cleaned, problems.messages


def test_it_refuses_a_technique_twice():
    cleaned, messages = recipe_problems([{"technique": "xla"}, {"technique": "pruning"},
                                         {"technique": "xla"}, {"technique": "xla"}])
    assert cleaned is fields.INVALID
    assert messages == {"steps": ["Technique 'xla' appears twice in the recipe; use it once."]}
    with pytest.raises(ValueError, match="appears twice"):
        techniques.build_steps([{"technique": "xla"}, {"technique": "xla"}])


@pytest.mark.parametrize("recipe, message", [
    ([{"technique": "pruning"}, {"technique": "clustering"}],
     "Clustering cannot share a recipe with pruning yet: both hold the kernels through a "
     "constraint."),
    ([{"technique": "clustering"}, {"technique": "pruning"}],
     "Clustering cannot share a recipe with pruning yet"),
    ([{"technique": "qat"}, {"technique": "ptq"}],
     "The qat step converts to an int8 .tflite itself; remove ptq from the recipe."),
    ([{"technique": "ptq", "mode": "float16"}, {"technique": "xla"}, {"technique": "qat"}],
     "The qat step converts to an int8 .tflite itself"),
])
def test_it_refuses_techniques_that_exclude_each_other(recipe, message):
    # At run time the later step's configure refuses them in either order; so does the door.
    cleaned, messages = recipe_problems(recipe)
    assert cleaned is fields.INVALID
    assert len(messages["steps"]) == 1 and messages["steps"][0].startswith(message)
    with pytest.raises(ValueError, match=re.escape(message)):
        techniques.build_steps(recipe)


def test_it_declares_conflicts_between_registered_techniques_only():
    for cls in TECHNIQUES.values():
        for other, why in cls.conflicts.items():
            assert other in TECHNIQUES and other != cls.technique
            assert why[0].isupper() and why.endswith("."), why


def test_it_refuses_a_step_the_model_cannot_take_at_its_index():
    resnet = ModelFacts("resnet", layers={"Conv2D": 7, "Add": 3, "Dense": 1}, chain=False,
                        nested=False)
    recipe = [{"technique": "pruning"}, {"technique": "batch_norm"},
              {"technique": "regularization", "dropout": 0.2}]
    cleaned, messages = recipe_problems(recipe, model=resnet)
    assert set(messages) == {"steps.1", "steps.2"}
    assert "resnet has branches" in messages["steps.1"][0]
    assert "Dropout layers; resnet has none" in messages["steps.2"][0]
    assert [step["technique"] for step in cleaned] == ["pruning", "batch_norm", "regularization"]
    assert recipe_problems(recipe)[1] == {}  # without facts, nothing is known to fail


def test_it_puts_a_bad_parameter_under_the_steps_index():
    cleaned, messages = recipe_problems([{"technique": "xla"},
                                         {"technique": "large_batch", "factor": 1}])
    assert cleaned is fields.INVALID
    assert messages == {"steps.1.factor": [
        "The large_batch factor must be between 2 and 1,024 (got 1)."]}


# --- JSON Schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_it_describes_each_technique_as_a_json_schema_that_agrees_with_the_fields(name):
    schema = schema_of(name)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    cls = TECHNIQUES[name]
    validator.validate(cls.defaults)
    validator.validate({})
    assert not validator.is_valid({"warp": 1})
    for key, field in cls.fields.items():
        assert schema["properties"][key]["default"] == field.default
        if isinstance(field, (fields.Integer, fields.Number)):
            for value in outside(field):
                assert not validator.is_valid({key: value}), (key, value)
            assert all(validator.is_valid({key: value}) for value in inside(field))
            assert validator.is_valid({key: None}) == field.nullable
        if isinstance(field, fields.Choice):
            assert not validator.is_valid({key: "warp"})
            assert all(validator.is_valid({key: option}) for option in field.options)


def test_it_describes_a_recipes_steps_as_one_json_schema():
    schema = techniques.steps_schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for name, cls in TECHNIQUES.items():
        assert validator.is_valid({"technique": name, **cls.defaults})
        assert validator.is_valid({"technique": name})
    assert not validator.is_valid({"technique": "warp_drive"})
    assert not validator.is_valid({"technique": "pruning", "target_sparsty": 0.5})
    assert not validator.is_valid({"technique": "pruning", "target_sparsity": 1})
