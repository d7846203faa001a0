"""The comparison rows from replicates and the benchmark: training intervals from paired
replicates, accuracy deltas over seeds, the A/A control, break-even points."""

import pytest
from django.template import Context, Template
from results import benchmark_results, finish_recipe, result

from experiments.comparison import (
    baseline_chance,
    break_even,
    budget_verdict,
    chance_interval,
    chance_level,
    noise_floor,
    points,
    points_interval,
    replicate_accuracy_delta,
    train_speedup,
    within_accuracy_budget,
)
from experiments.models import Run
from experiments.selectors import experiment_classes, experiment_comparison


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


def test_an_accuracy_delta_interval_stays_within_what_a_difference_can_be():
    # Two seeds that disagree wildly: t(1 df) = 12.7 times a spread of 0.45.
    pairs = [({"test_accuracy": 0.1}, {"test_accuracy": 0.9}),
             ({"test_accuracy": 0.9}, {"test_accuracy": 0.8})]

    delta, (low, high) = replicate_accuracy_delta(pairs)

    assert delta == pytest.approx(0.35)
    assert (low, high) == (-1.0, 1.0)
    assert replicate_accuracy_delta(pairs[:1]) is None


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


# A baseline at chance level


def test_it_puts_the_chance_interval_around_one_over_the_classes():
    # 0.1 ± 1.96 * sqrt(0.1 * 0.9 / 1000) = 0.1 ± 0.0186.
    low, high = chance_interval(10, 1000)

    assert (low, high) == pytest.approx((0.08141, 0.11859), abs=1e-5)
    assert chance_interval(2, 10)[1] == pytest.approx(0.8099, abs=1e-4)
    # Clamped: with a handful of samples the region would reach below 0.
    assert chance_interval(100, 20)[0] == 0.0


def test_it_reads_a_baseline_at_chance_as_nothing_to_compare():
    at_chance = chance_level(0.102, 10, 1000)

    assert at_chance["message"] == (
        "The baseline scored 10.2% test accuracy, which is chance level for 10 classes "
        "(10%, interval 8.1-11.9% for 1,000 test samples): there is nothing to compare. "
        "Train longer, fix the data, or pick another model.")
    assert (at_chance["chance"], at_chance["ci"], at_chance["test_samples"]) == (
        0.1, [0.0814, 0.1186], 1000)
    # Worse than guessing is no baseline either.
    assert "below chance level for 10 classes" in chance_level(0.05, 10, 1000)["message"]
    # Clearly above chance.
    assert chance_level(0.5, 10, 1000) is None
    assert chance_level(0.52, 2, 1000) is not None  # two classes: 50% is chance
    # Unknown classes or test samples: no verdict.
    assert chance_level(0.1, None, 1000) is None
    assert chance_level(0.1, 10, None) is None


def test_it_draws_the_chance_line_at_the_top_of_the_interval():
    # The top is 0.11859 for 10 classes and 1,000 samples: 118 right answers are chance,
    # 119 are not.
    assert chance_level(0.118, 10, 1000) is not None
    assert chance_level(0.119, 10, 1000) is None
    # The same accuracy on ten times the samples is told apart from guessing.
    assert chance_level(0.118, 10, 10_000) is None


def _score_baseline(experiment, accuracies):
    for replicate, accuracy in enumerate(accuracies):
        run = experiment.runs.get(name="baseline", replicate=replicate)
        Run.objects.filter(pk=run.pk).update(status="succeeded",
                                             result=result(accuracy=accuracy))


def test_it_judges_replicated_baselines_by_their_mean_accuracy(replicated):
    # 360 test samples, 10 classes: chance tops out at 13.1%. The first replicate (the one
    # the comparison rows stand on) is above it, the mean of the three is not.
    _score_baseline(replicated, [0.14, 0.09, 0.10])

    rows = experiment_comparison(replicated)
    found = baseline_chance(rows)

    assert rows[0]["baseline_chance"] == found
    assert (found["accuracy"], found["replicates"], found["ci"]) == (0.11, 3, [0.069, 0.131])
    assert found["message"].startswith(
        "The baseline scored 11.0% test accuracy (the mean of 3 replicates), which is chance "
        "level for 10 classes (10%, interval 6.9-13.1% for 360 test samples)")
    # One replicate at chance does not make the baseline chance when the mean is above it.
    _score_baseline(replicated, [0.10, 0.20, 0.20])
    assert baseline_chance(experiment_comparison(replicated)) is None
    assert baseline_chance([]) is None


def test_it_counts_the_classes_of_the_experiments_dataset(alice, alice_team, make_experiment,
                                                          make_dataset):
    digits = make_experiment(team=alice_team, user=alice)
    synthetic = make_experiment(team=alice_team, user=alice, dataset={
        "name": "synthetic", "samples": 200, "shape": [8], "classes": 4})
    uploaded = make_dataset(team=alice_team, num_classes=3)
    npz = make_experiment(team=alice_team, user=alice,
                          dataset={"name": "npz", "dataset_id": uploaded.pk})

    assert [experiment_classes(e) for e in (digits, synthetic, npz)] == [10, 4, 3]
    # 30% of 4 classes is chance on 40 test samples; of 10 classes it would not be.
    Run.objects.filter(pk=synthetic.runs.get().pk).update(
        status="succeeded", result=result(accuracy=0.3, test_samples=40))
    assert "chance level for 4 classes (25%" in baseline_chance(
        experiment_comparison(synthetic))["message"]


# Accuracy in percentage points


@pytest.mark.parametrize("fraction, text", [
    (-0.0111, "−1.1 pts"), (0.0023, "+0.2 pts"), (0.0, "0.0 pts"), (-0.00001, "0.0 pts"),
    (0.05, "+5.0 pts"), (None, ""), (float("nan"), ""),
])
def test_it_shows_an_accuracy_difference_in_points(fraction, text):
    assert points(fraction) == text
    assert Template("{% load figures %}{{ value|points }}").render(
        Context({"value": fraction})) == text


def test_it_shows_a_budget_and_an_interval_in_points():
    assert [points(budget, digits=2, signed=False) for budget in (0.01, 0.005, 0.025)] == [
        "1 pt", "0.5 pts", "2.5 pts"]
    assert points_interval([-0.0234, 0.004]) == "−2.3 to +0.4 pts"
    assert points_interval(None) == ""


def test_it_allows_a_drop_of_exactly_the_budget():
    assert within_accuracy_budget(-0.01, 0.01) is True
    assert within_accuracy_budget(-0.0101, 0.01) is False
    assert within_accuracy_budget(0.02, 0.0) is True
    assert within_accuracy_budget(None, 0.01) is None
    assert budget_verdict(-0.0101, 0.01) == "over the 1 pt budget (judged on the point estimate)"
