import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from results import benchmark_results

from experiments.models import Benchmark, Experiment, Membership, Run, Team
from experiments.services import benchmark_runs


@pytest.fixture
def spec_file(tmp_path, tiny_spec):
    def write(**overrides):
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(tiny_spec(**overrides)))
        return str(path)

    return write


def submit(*args):
    out = StringIO()
    call_command("submit", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_experiment_in_the_users_team(alice, alice_team, spec_file,
                                                     django_capture_on_commit_callbacks):
    path = spec_file(recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = submit(path, "--user", "alice")

    experiment = Experiment.objects.get()
    assert experiment.team == alice_team
    assert experiment.created_by == alice
    assert list(experiment.runs.values_list("name", flat=True)) == ["baseline", "XLA"]
    assert len(callbacks) == 2
    assert (f"Experiment {experiment.pk} “digits, seed MLP” in Alice's team: "
            "2 runs queued (baseline, XLA).") in out
    assert experiment.get_absolute_url() in out


def test_it_uses_the_named_team(alice, charlie_team, spec_file):
    Membership.objects.create(team=charlie_team, user=alice)

    submit(spec_file(), "--user", "alice", "--team", "Charlie's team")

    assert Experiment.objects.get().team == charlie_team


def test_it_refuses_a_team_the_user_is_not_in(alice, charlie_team, spec_file):
    with pytest.raises(CommandError, match="alice is not a member of a team named "
                                           "\"Charlie's team\""):
        submit(spec_file(), "--user", "alice", "--team", "Charlie's team")

    assert not Experiment.objects.exists()


def test_it_refuses_a_viewer(bob, spec_file, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(CommandError, match="bob cannot submit to Alice's team: Viewers "
                                               "cannot change this team's work."):
            submit(spec_file(), "--user", "bob")

    assert not Experiment.objects.exists()
    assert not callbacks


def test_it_gives_a_user_without_a_team_a_team(django_user_model, spec_file):
    dave = django_user_model.objects.create_user("dave")

    submit(spec_file(), "--user", "dave")

    experiment = Experiment.objects.get()
    assert experiment.team.name == "dave's team"
    assert Membership.objects.get(team=experiment.team, user=dave).role == "admin"


def test_it_refuses_bad_json(alice, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"name": "unfinished",')

    with pytest.raises(CommandError, match=r"spec\.json is not valid JSON: "):
        submit(str(path), "--user", "alice")

    assert not Experiment.objects.exists()


def test_it_refuses_a_missing_file(alice, tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*nowhere.json: No such file"):
        submit(str(tmp_path / "nowhere.json"), "--user", "alice")


def test_it_refuses_an_invalid_spec_with_each_message(alice, spec_file):
    path = spec_file(training={"epochs": 0}, hardware="tpu")

    with pytest.raises(CommandError) as info:
        submit(path, "--user", "alice")

    message = str(info.value)
    assert message.startswith("The spec is not valid:\n")
    assert "  training.epochs: Epochs must be between 1 and 500 (got 0)." in message
    assert "  hardware: Hardware must be one of cpu, gpu (did you mean 'gpu'?)." in message
    assert not Experiment.objects.exists()


def test_it_gives_an_invalid_step_only_its_own_message(alice, spec_file):
    path = spec_file(recipes=[{"name": "int8", "steps": [{"technique": "ptq", "mode": "int3"}]}])

    with pytest.raises(CommandError) as info:
        submit(path, "--user", "alice")

    assert str(info.value) == ("The spec is not valid:\n  recipes.0.steps.0.mode: The ptq mode "
                               "must be one of dynamic_int8, float16, full_int8.")


def test_it_refuses_an_unknown_user(alice, spec_file):
    with pytest.raises(CommandError, match="No user named 'zed'."):
        submit(spec_file(), "--user", "zed")

    assert not Experiment.objects.exists()
    assert not Team.objects.exclude(name="Alice's team").exists()


def measured(*, accuracy, samples_per_s, latency_ms, model_bytes):
    """A result as the engine reports it, with the per-trial samples intervals come from."""
    return {
        "test_accuracy": accuracy, "train_samples_per_s": samples_per_s,
        "train_samples_per_s_epochs": [samples_per_s * f for f in (0.97, 1.0, 1.03, 0.99)],
        "latency_ms_p50": latency_ms,
        "latency_samples": [latency_ms * f for f in (0.98, 1.0, 1.02, 0.99)],
        "model_bytes": model_bytes, "fingerprint": {"cpu_model": "Test CPU"},
    }


@pytest.fixture
def worker_finishes(monkeypatch):
    """Stand in for the runners: the first time --follow waits, each run moves one step
    (queued -> running at epoch 1 -> ended as given), as the database would show it."""
    from experiments.management.commands import submit as command

    def finish(outcomes):
        waits = []

        def sleep(seconds):
            waits.append(seconds)
            experiment = Experiment.objects.get()
            runs = list(Run.objects.filter(experiment=experiment))
            if all(run.has_ended for run in runs):
                # Then the benchmark stage: queued, measuring, done.
                benchmark = Benchmark.objects.filter(experiment=experiment).first()
                if benchmark is None:
                    Benchmark.objects.create(experiment=experiment, runs=benchmark_runs(runs))
                elif benchmark.status == Run.Status.QUEUED:
                    Benchmark.objects.filter(pk=benchmark.pk).update(
                        status=Run.Status.RUNNING, execution=2)
                else:
                    benchmark_results(experiment)
                return
            for run in runs:
                if run.status == Run.Status.QUEUED:
                    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING,
                                                         epochs_done=1)
                else:
                    Run.objects.filter(pk=run.pk).update(epochs_done=2, **outcomes[run.name])

        monkeypatch.setattr(command.time, "sleep", sleep)
        return waits

    return finish


class TTY(StringIO):
    def isatty(self):
        return True


def test_it_follows_the_runs_and_prints_the_speedups(alice, spec_file, worker_finishes):
    waits = worker_finishes({
        "baseline": {"status": Run.Status.SUCCEEDED, "result": measured(
            accuracy=0.95, samples_per_s=1000.0, latency_ms=0.4, model_bytes=160_000)},
        "XLA": {"status": Run.Status.SUCCEEDED, "result": measured(
            accuracy=0.9375, samples_per_s=1500.0, latency_ms=0.1, model_bytes=40_000)},
    })
    path = spec_file(recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}],
                     training={"epochs": 2, "batch_size": 64})

    out = submit(path, "--user", "alice", "--follow", "--poll", "0.25")

    assert waits == [0.25] * 5
    lines = out.splitlines()
    # Not a terminal: plain lines, one per change, and no redrawn bars.
    assert "\r" not in out
    assert "  baseline                     queued     epoch 0/2" in lines
    assert "  XLA                          running    epoch 1/2" in lines
    assert "  XLA                          succeeded  epoch 2/2" in lines
    # The speedups wait for the benchmark stage.
    assert lines.index("  benchmark queued") < lines.index(
        "  benchmarking: execution 2 of 5") < lines.index("  benchmark succeeded")
    table = lines[lines.index("Speedups against the baseline (95% confidence interval in "
                              "brackets):") + 1:]
    assert re.split(r"\s{2,}", table[0].strip()) == [
        "run", "kind", "train speedup", "inference speedup", "size reduction",
        "accuracy delta", "comparable"]
    noise, row = (re.split(r"\s{2,}", line.strip()) for line in table[1:3])
    assert noise[:2] == ["Noise floor: baseline vs itself", "A/A control"]
    assert noise[3].startswith("1.00x [")
    assert row[:3] == ["XLA", "vs baseline", "1.50x (one run: repeat to get an interval)"]
    [inference_ci] = re.findall(r"\[(\d+\.\d\d), (\d+\.\d\d)\]", row[3])
    assert row[3].startswith("4.00x [")
    assert float(inference_ci[0]) <= 4.0 <= float(inference_ci[1])
    # Test accuracy 0.9375 against 0.95: in percentage points.
    assert row[4:] == ["4.00x", "-1.2 pts", "yes"]
    assert lines[-1] == "All 2 runs succeeded."


def test_it_draws_a_bar_per_run_on_a_terminal(alice, spec_file, worker_finishes):
    worker_finishes({
        "baseline": {"status": Run.Status.SUCCEEDED, "result": measured(
            accuracy=0.95, samples_per_s=1000.0, latency_ms=0.4, model_bytes=160_000)},
        "XLA": {"status": Run.Status.SUCCEEDED, "result": measured(
            accuracy=0.95, samples_per_s=2000.0, latency_ms=0.4, model_bytes=160_000)},
    })
    path = spec_file(recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}],
                     training={"epochs": 2, "batch_size": 64})
    out = TTY()

    call_command("submit", path, "--user", "alice", "--follow", "--poll", "0",
                 stdout=out)

    text = out.getvalue()
    assert "\r" in text
    assert re.search(r"baseline \|[^|]*\| 0/2 epochs, queued", text)
    assert re.search(r"XLA      \|[^|]*\| 1/2 epochs, running", text)
    assert re.search(r"XLA      \|[#█]{10}\| 2/2 epochs, succeeded", text)
    assert "  epoch " not in text
    assert re.search(r"  XLA  +vs baseline  +2\.00x \(one run: repeat to get an interval\)"
                     r"  +1\.00x \[\d\.\d\d, \d\.\d\d\]", text)
    assert text.rstrip().endswith("All 2 runs succeeded.")


def test_it_fails_when_a_run_fails_and_says_why(alice, spec_file, worker_finishes):
    worker_finishes({
        "baseline": {"status": Run.Status.SUCCEEDED, "result": measured(
            accuracy=0.95, samples_per_s=1000.0, latency_ms=0.4, model_bytes=160_000)},
        "XLA": {"status": Run.Status.FAILED, "error": "XLA is not available here"},
    })
    path = spec_file(recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}],
                     training={"epochs": 2, "batch_size": 64})
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 2 runs did not succeed."):
        call_command("submit", path, "--user", "alice", "--follow", "--poll", "0",
                     stdout=out)

    text = out.getvalue()
    assert "  XLA                          failed     epoch 2/2  XLA is not available here" in text
    # The baseline against itself, and nothing to compare with.
    assert re.search(r"Noise floor: baseline vs itself  A/A control  -  +1\.00x \[", text)
    assert "XLA  vs baseline" not in text
