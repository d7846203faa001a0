"""The comparison rows from replicates and the benchmark: training intervals from paired
replicates, accuracy deltas over seeds, the A/A control, break-even points."""

import pytest
from results import benchmark_results, finish_recipe

from experiments.comparison import break_even, noise_floor, train_speedup
from experiments.models import Run
from experiments.selectors import experiment_comparison


@pytest.fixture
def replicated(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice,
                           training={"epochs": 1, "batch_size": 64, "repeats": 3},
                           recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]},
                                    {"name": "int8", "steps": [{"technique": "ptq"}]}])


def rows_of(experiment):
    return {(row["name"], row["kind"]): row for row in experiment_comparison(experiment)}


def test_it_queues_replicates_interleaved_with_their_seeds(replicated):
    runs = list(replicated.runs.order_by("pk"))

    assert [(run.name, run.replicate) for run in runs] == [
        ("baseline", 0), ("XLA", 0), ("int8", 0),
        ("baseline", 1), ("XLA", 1), ("int8", 1),
        ("baseline", 2), ("XLA", 2), ("int8", 2)]
    assert [run.label for run in runs[3:6]] == ["baseline #2", "XLA #2", "int8 #2"]
    # The page lists them by recipe.
    assert [(r.position, r.replicate) for r in replicated.runs.all()][:3] == [
        (0, 0), (0, 1), (0, 2)]


def test_it_pairs_replicate_i_of_a_recipe_with_replicate_i_of_the_baseline():
    base = [{"train_samples_per_s_epochs": [100.0, 100.0]},
            {"train_samples_per_s_epochs": [80.0, 80.0]}]  # the machine slowed down
    recipe = [{"train_samples_per_s_epochs": [150.0, 150.0]},
              {"train_samples_per_s_epochs": [120.0, 120.0]}]

    speedup, ci, count, method = train_speedup(list(zip(base, recipe, strict=True)))

    # Paired, the slowdown cancels: 1.5x in both replicates.
    assert speedup == pytest.approx(1.5)
    assert ci == pytest.approx([1.5, 1.5])
    assert (count, method) == (2, "Student t over 2 units")


def test_it_gives_training_an_interval_from_replicates(replicated, benchmarked):
    finish_recipe(replicated.runs.get(name="baseline", replicate=0))
    finish_recipe(replicated.runs.get(name="XLA", replicate=0), train=1500.0)
    benchmark_results(replicated)

    row = rows_of(replicated)["XLA", "vs baseline"]

    assert row["replicates"] == 3
    assert row["train_ci"][0] > 1.0 and row["train_verdict"] == "faster"
    assert row["train_tone"] == "good"


def test_it_gives_one_replicate_a_point_and_no_interval(alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    finish_recipe(experiment.runs.get(name="baseline"))
    finish_recipe(experiment.runs.get(name="XLA"), train=3000.0)
    benchmark_results(experiment)

    row = rows_of(experiment)["XLA", "vs baseline"]

    assert row["train_speedup"] == pytest.approx(3.0)
    assert row["train_ci"] is None
    assert (row["train_verdict"], row["train_tone"]) == (
        "one run: repeat to get an interval", "unclear")


def test_it_takes_the_accuracy_delta_over_the_replicates(replicated):
    for replicate, (base, recipe) in enumerate([(0.90, 0.89), (0.92, 0.90), (0.91, 0.895)]):
        for name, accuracy in (("baseline", base), ("XLA", recipe)):
            run = replicated.runs.get(name=name, replicate=replicate)
            Run.objects.filter(pk=run.pk).update(status="succeeded", result={
                "test_accuracy": accuracy, "test_samples": 360, "latency_ms_p50": 1.0,
                "train_samples_per_s_epochs": [100.0]})

    row = rows_of(replicated)["XLA", "vs baseline"]

    # Paired differences -0.01, -0.02, -0.015: mean and Student-t interval over the seeds.
    assert row["accuracy_delta"] == pytest.approx(-0.015, abs=1e-4)
    low, high = row["accuracy_ci"]
    assert low < -0.015 < high < 0
    assert row["accuracy_verdict"] == "worse"


def test_it_reads_the_noise_floor_from_the_a_a_control(replicated, benchmarked):
    finish_recipe(replicated.runs.get(name="baseline", replicate=0))
    benchmarked(replicated, {"aa": (0.93, [0.90, 0.96])})

    rows = experiment_comparison(replicated)
    floor = noise_floor(rows)

    assert rows[0]["kind"] == "A/A control" and rows[0]["name"] == (
        "Noise floor: baseline vs itself")
    assert floor["too_noisy"] is True
    # The same file is never "slower" than itself: the machine was too noisy.
    assert (floor["inference_verdict"], floor["inference_tone"]) == (
        "too noisy: excludes 1.0", "bad")
    assert noise_floor([]) is None


def test_it_says_when_a_recipe_pays_back_its_one_time_cost():
    base = {"train_samples_per_s": 1000.0, "compile_seconds": 0.5}
    result = {"one_time_costs": [
        {"what": "XLA compilation", "seconds": 2.5, "pays_back": "training",
         "less_baseline": "compile_seconds"},
        {"what": "TFLite conversion", "seconds": 1.0, "pays_back": "inference"}]}
    row = {"train_speedup": 2.0, "train_ci": [1.25, 4.0],
           "inference_speedup": 0.9, "inference_ci": [0.85, 0.95]}

    xla, tflite = break_even(base, result, row, base_latency_ms=2.0)

    # 2 s more than the baseline's warm-up; each sample saves 1 ms - 0.5 ms.
    assert xla == {"what": "XLA compilation", "seconds": 2.0, "unit": "training samples",
                   "after": 4000, "ci": [2667, 10000]}
    # Slower: it never pays back.
    assert (tflite["after"], tflite["ci"]) == (None, [None, None])
    # An interval that reaches 1.0 may never pay back either.
    row["train_ci"] = [0.9, 4.0]
    assert break_even(base, result, row, 2.0)[0]["ci"] == [2667, None]
