"""Stored curves (experiments.curves): a run's downsampled series kept up to date as epochs
arrive, so that a page's cost does not grow with the epochs."""

import json
import math
import random

from experiments import curves
from experiments.curves import CURVE_POINTS, TELEMETRY_POINTS


def epochs(count, *, spike_at=None, start=1):
    for epoch in range(start, count + 1):
        loss = 50.0 if epoch == spike_at else 1.0 / epoch
        yield {"event": "epoch", "epoch": epoch, "loss": loss, "accuracy": 1 - loss / 4,
               "val_loss": loss * 1.1, "val_accuracy": min(0.99, epoch / count),
               "seconds": 0.25}


def test_a_short_run_keeps_every_point():
    view = curves.view(curves.from_events(epochs(5)))

    assert [x for x, _ in view["series"]["loss"]] == [1, 2, 3, 4, 5]
    assert view["series"]["val_accuracy_by_time"][-1] == [1.25, 0.99]
    assert view["last_epoch"] == 5 and view["elapsed"] == 1.25


def test_a_long_run_stays_bounded_and_keeps_its_spike_ends_and_summary():
    state = curves.from_events(epochs(20_000, spike_at=12_345))
    view = curves.view(state)

    for key, points in view["series"].items():
        assert 0 < len(points) <= CURVE_POINTS, key
        assert [x for x, _ in points] == sorted(x for x, _ in points), key
    loss = view["series"]["loss"]
    assert [12_345, 50.0] in loss
    assert loss[0] == [1, 1.0] and loss[-1] == [20_000, 5e-05]
    assert view["summary"]["loss"] == {"last": 1 / 20_000, "best": 1 / 20_000,
                                       "min": 1 / 20_000, "max": 50.0}
    assert view["summary"]["val_accuracy"]["best"] == 0.99
    # What a page reads of a run does not grow with its epochs.
    assert len(json.dumps(state)) < 40_000


def test_folding_in_batches_gives_what_folding_at_once_gives():
    events = list(epochs(3_000, spike_at=1_001))
    rng = random.Random(7)
    state, at = curves.empty(), 0
    while at < len(events):
        size = rng.choice([1, 1, 2, 7, 50, 400])
        state = curves.extend(dict(state), events[at:at + size])
        at += size

    assert state == curves.from_events(events)


def test_it_ignores_epochs_already_folded_in_and_leaves_the_stored_copy_alone():
    stored = curves.from_events(epochs(10))
    before = json.dumps(stored, sort_keys=True)

    again = curves.extend(dict(stored), list(epochs(10)))
    longer = curves.extend(dict(stored), list(epochs(12, start=11)))

    assert again == stored
    assert json.dumps(stored, sort_keys=True) == before
    assert curves.view(longer)["last_epoch"] == 12


def test_it_draws_nothing_for_a_diverged_or_missing_value():
    state = curves.from_events([
        {"event": "epoch", "epoch": 1, "loss": math.nan, "accuracy": "high"},
        {"event": "epoch", "epoch": 2, "loss": 0.5, "accuracy": math.inf},
        {"event": "epoch", "loss": 0.25},  # no number: the next epoch
        "not an event", {"event": "log", "message": "hello"},
    ])
    view = curves.view(state)

    assert view["series"]["loss"] == [[2, 0.5], [3, 0.25]]
    assert view["series"]["accuracy"] == []
    assert view["summary"]["accuracy"] == {"last": None, "best": None, "min": None, "max": None}
    json.dumps(state, allow_nan=False)  # storable as PostgreSQL jsonb


def test_telemetry_is_thinned_evenly_and_keeps_the_latest_sample():
    samples = [{"event": "telemetry", "t": float(t), "cpu_percent": 50.0 + t % 7,
                "rss_mb": 100 + t, "gpu_util": None, "gpu_mem_mb": None}
               for t in range(5_000)]
    state = curves.from_events(samples + samples[:10])  # a repeat changes nothing
    telemetry = curves.view(state)["telemetry"]

    assert len(telemetry) <= TELEMETRY_POINTS
    assert telemetry[0]["t"] == 0.0 and telemetry[-1]["t"] == 4_999.0
    gaps = {b["t"] - a["t"] for a, b in zip(telemetry[:-2], telemetry[1:-1], strict=True)}
    assert len(gaps) == 1  # evenly spread


def test_an_empty_state_reads_as_no_curves():
    assert curves.view({}) == curves.view(curves.empty())
    assert curves.view({})["series"]["loss"] == [] and curves.view({})["last_epoch"] == 0
