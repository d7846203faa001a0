import pytest
from django.core.exceptions import ValidationError

from experiments.spec import engine_spec, validate_spec


def errors_of(raw, **kwargs):
    with pytest.raises(ValidationError) as info:
        validate_spec(raw, **kwargs)
    return info.value.message_dict


def test_it_fills_in_defaults():
    spec = validate_spec({"name": "  bare  ", "model": {"arch": "seed_mlp"}})

    assert spec["name"] == "bare"
    assert spec["training"] == {
        "epochs": 5, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
        "repeats": 1,
    }
    assert spec["hardware"] == "cpu"
    assert spec["dataset"] == {"name": "digits"}
    assert spec["model"]["params"] == {"units": 64, "dropout": 0.2}
    assert spec["recipes"] == []


def test_it_fills_in_synthetic_defaults(tiny_spec):
    spec = validate_spec(tiny_spec(dataset={"name": "synthetic"}))

    assert spec["dataset"] == {
        "name": "synthetic", "samples": 2000, "shape": [32, 32, 3], "classes": 10, "seed": 0,
    }


def test_it_fills_in_step_defaults_and_names_recipes(tiny_spec):
    spec = validate_spec(tiny_spec(recipes=[{"steps": [{"technique": "xla"}]}]))

    assert spec["recipes"][0]["name"] == "xla"
    assert spec["recipes"][0]["steps"][0]["technique"] == "xla"


def test_it_does_not_change_its_input(tiny_spec):
    raw = tiny_spec()
    validate_spec(raw)

    assert raw == tiny_spec()


def test_it_refuses_a_spec_that_is_not_an_object():
    for raw in (None, [], "digits", 3):
        assert errors_of(raw) == {"spec": ["The spec must be a JSON object."]}


def test_it_refuses_an_unknown_technique(tiny_spec):
    errors = errors_of(tiny_spec(recipes=[{"name": "warp", "steps": [
        {"technique": "warp_drive"}]}]))

    assert "Unknown technique 'warp_drive'" in errors["recipes.0.steps.0"][0]


def test_it_refuses_a_recipe_without_steps(tiny_spec):
    errors = errors_of(tiny_spec(recipes=[{"name": "empty", "steps": []}]))

    assert "at least one step" in errors["recipes.0"][0]


BAD_MODE = "The ptq mode must be one of dynamic_int8, float16, full_int8."


def test_it_gives_an_invalid_step_only_its_own_message(tiny_spec):
    errors = errors_of(tiny_spec(recipes=[{"name": "int8", "steps": [
        {"technique": "xla"}, {"technique": "ptq", "mode": "int3"}]}]))

    assert errors == {"recipes.0.steps.1.mode": [BAD_MODE]}


def test_it_checks_the_other_recipes_beside_an_invalid_one(tiny_spec):
    recipes = [
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "int3"}]},
        {"name": "empty", "steps": []},
        {"name": "fast", "steps": [{"technique": "xla"}]},
        {"name": "fast", "steps": [{"technique": "ptq", "mode": "float16"}]},
    ]

    errors = errors_of(tiny_spec(recipes=recipes))

    assert errors == {
        "recipes.0.steps.0.mode": [BAD_MODE],
        "recipes.1": ["A recipe needs at least one step (the baseline is added for you)."],
        "recipes.3": ["Recipe name 'fast' is used twice (or is 'baseline')."],
    }


def test_it_refuses_duplicate_recipe_names(tiny_spec):
    recipes = [
        {"name": "fast", "steps": [{"technique": "xla"}]},
        {"name": "fast", "steps": [{"technique": "ptq", "mode": "float16"}]},
    ]

    errors = errors_of(tiny_spec(recipes=recipes))

    assert "recipes.0" not in errors
    assert errors["recipes.1"] == ["Recipe name 'fast' is used twice (or is 'baseline')."]


def test_it_refuses_a_recipe_called_baseline(tiny_spec):
    errors = errors_of(tiny_spec(recipes=[{"name": "Baseline", "steps": [
        {"technique": "xla"}]}]))

    assert "is used twice (or is 'baseline')" in errors["recipes.0"][0]


def test_it_refuses_bad_hardware(tiny_spec):
    errors = errors_of(tiny_spec(hardware="tpu"))

    assert errors == {"hardware": ["Hardware must be one of cpu, gpu (did you mean 'gpu'?)."]}


def test_it_refuses_out_of_range_training_values(tiny_spec):
    errors = errors_of(tiny_spec(training={"epochs": 0, "batch_size": True,
                                           "learning_rate": 0, "optimizer": "lion"}))

    assert errors["training.epochs"] == ["Epochs must be between 1 and 500 (got 0)."]
    assert errors["training.batch_size"] == ["Batch size must be an integer."]
    assert errors["training.learning_rate"][0].startswith("Learning rate must be between")
    assert errors["training.optimizer"] == ["Optimizer must be one of adam, sgd, rmsprop, adamw."]


def test_it_refuses_a_batch_larger_than_the_training_set(tiny_spec):
    # Digits: 1,797 samples, 20% held out for test, then 10% of the rest for validation.
    errors = errors_of(tiny_spec(training={"batch_size": 1294}))

    assert errors["training.batch_size"] == [
        "Batch size 1,294 is larger than the 1,293 training samples of this dataset."
    ]
    assert validate_spec(tiny_spec(training={"batch_size": 1293}))


def test_it_refuses_a_cnn_on_flat_samples(tiny_spec):
    errors = errors_of(tiny_spec(model={"arch": "seed_cnn"},
                                 dataset={"name": "synthetic", "shape": [64]}))

    assert "seed_cnn needs image samples" in errors["model.arch"][0]


def test_it_refuses_an_unknown_model_parameter(tiny_spec):
    errors = errors_of(tiny_spec(model={"arch": "seed_mlp", "params": {"filters": 3}}))

    assert errors["model.params"] == ["Unknown setting 'filters' for the seed_mlp parameters; it "
                                      "takes units, dropout."]


def test_it_refuses_a_model_over_the_parameter_cap(settings, tiny_spec):
    settings.ACCELWEB_MAX_PARAMS = 1000

    errors = errors_of(tiny_spec())

    assert "the limit is 1,000" in errors["model.params"][0]


def test_it_refuses_unknown_benchmark_settings(tiny_spec):
    errors = errors_of(tiny_spec(benchmark={"trials": 0, "speed": "max"}))

    assert errors["benchmark.trials"] == ["Trials must be between 1 and 50 (got 0)."]
    assert errors["benchmark"] == ["Unknown setting 'speed' for benchmark; it takes trials, "
                                   "latency_samples, warmup, executions, rounds, calls."]


def test_it_refuses_an_npz_dataset_without_a_team(tiny_spec):
    errors = errors_of(tiny_spec(dataset={"name": "npz", "dataset_id": 1}))

    assert errors["dataset.dataset_id"] == ["Choose one of your team's uploaded datasets."]


def test_it_refuses_another_teams_npz_dataset(alice_team, charlie_team, make_dataset, tiny_spec):
    charlies = make_dataset(team=charlie_team)

    errors = errors_of(tiny_spec(dataset={"name": "npz", "dataset_id": charlies.pk}),
                       team=alice_team)

    assert errors["dataset.dataset_id"] == ["Choose one of your team's uploaded datasets."]


def test_it_describes_the_teams_npz_dataset(alice_team, make_dataset, tiny_spec):
    blobs = make_dataset(team=alice_team, name="blobs")

    spec = validate_spec(tiny_spec(dataset={"name": "npz", "dataset_id": blobs.pk},
                                   training={"batch_size": 16}), team=alice_team)

    assert spec["dataset"] == {"name": "npz", "dataset_id": blobs.pk, "label": "blobs"}


def test_it_gives_the_engine_one_recipe_and_the_dataset_path(tiny_spec):
    spec = validate_spec(tiny_spec(recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}]))

    out = engine_spec(spec, spec["recipes"][0]["steps"], dataset_path="/data/blobs.npz")

    assert "recipes" not in out
    assert out["steps"] == [{"technique": "xla"}]
    assert out["dataset"] == {"name": "npz", "path": "/data/blobs.npz"}
    assert spec["dataset"] == {"name": "digits"}


def test_it_gives_replicate_i_the_seed_plus_i(tiny_spec):
    spec = validate_spec(tiny_spec(training={"epochs": 1, "seed": 7, "repeats": 3},
                                   benchmark={"executions": 3, "rounds": 4, "trials": 2}))

    out = engine_spec(spec, [], replicate=2)

    # The engine knows neither repeats nor the benchmark stage's settings: it refuses
    # keys it does not know.
    assert out["training"] == {"epochs": 1, "batch_size": 64, "optimizer": "adam",
                               "learning_rate": 0.001, "seed": 9}
    assert out["benchmark"] == {"trials": 2}
    assert spec["training"]["seed"] == 7 and spec["training"]["repeats"] == 3


@pytest.mark.parametrize(("training", "benchmark", "path"), [
    ({"repeats": 0}, {}, "training.repeats"),
    ({"repeats": 11}, {}, "training.repeats"),
    ({"repeats": 2.5}, {}, "training.repeats"),
    ({}, {"executions": 1}, "benchmark.executions"),
    ({}, {"rounds": 201}, "benchmark.rounds"),
    ({}, {"calls": 0}, "benchmark.calls"),
])
def test_it_bounds_repeats_and_the_benchmark_stage(tiny_spec, training, benchmark, path):
    messages = errors_of(tiny_spec(training={"epochs": 1, **training}, benchmark=benchmark))

    assert list(messages) == [path]


def test_it_leaves_room_for_each_replicates_seed(tiny_spec):
    messages = errors_of(tiny_spec(training={"epochs": 1, "seed": 2**31 - 2, "repeats": 3}))

    assert messages == {"training.seed": ["With 3 repeats the seed must be at most "
                                          "2,147,483,645."]}
