"""Runner-side pieces without a worker process: routing, pinning, telemetry, the reaper,
announcements and the cancel command."""

import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from experiments.forms import hardware_choices
from experiments.models import Run, Worker
from runners.engine.fingerprint import cpu_flags
from runners.fleet import reap_stale_runs, worker_announce
from runners.hardware import device_for_slot, gpu_model_queue, pinned_gpu, queue_for
from runners.telemetry import Sampler


def test_it_routes_by_hardware_and_gpu_model():
    assert queue_for({"hardware": "cpu"}) == "cpu"
    assert queue_for({"hardware": "gpu"}) == "gpu"
    assert queue_for({"hardware": "gpu", "gpu_model": "NVIDIA H100 80GB HBM3"}) == \
        "gpu.nvidia-h100-80gb-hbm3"
    assert gpu_model_queue("NVIDIA  A100-SXM4 (40GB)") == "gpu.nvidia-a100-sxm4-40gb"


def test_it_hides_gpus_from_a_cpu_run():
    device, env = device_for_slot("cpu", 0)

    assert device.startswith("CPU: ")
    assert env == {"CUDA_VISIBLE_DEVICES": "-1"}


def test_it_samples_cpu_and_memory_of_a_process():
    sampler = Sampler(os.getpid())

    sample = sampler.sample()

    assert sample["event"] == "telemetry"
    assert sample["rss_mb"] > 10
    assert 0 <= sample["cpu_percent"] <= 100
    assert "gpu_util" not in sample


@pytest.fixture
def running(make_experiment, alice, alice_team):
    run = make_experiment(team=alice_team, user=alice).runs.get()
    Run.objects.filter(pk=run.pk).update(status="running", worker="w1@host",
                                         heartbeat_at=timezone.now())
    return run


def test_it_reaps_a_run_whose_heartbeat_stopped(running):
    Run.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=90))

    assert reap_stale_runs(reaper="w2@host", timeout=60) == [running.pk]
    assert reap_stale_runs(reaper="w3@host", timeout=60) == []  # reaped once

    running.refresh_from_db()
    assert running.status == "failed"
    assert "w1@host stopped sending heartbeats" in running.error
    assert "found by w2@host" in running.error


def test_it_leaves_a_run_that_beats(running):
    assert reap_stale_runs(reaper="w2@host", timeout=60) == []

    running.refresh_from_db()
    assert running.status == "running"


def test_it_keeps_a_run_whose_runner_beats_from_the_reaper(running):
    Run.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=90))

    running.heartbeat()

    assert reap_stale_runs(reaper="w2@host", timeout=60) == []
    beaten = running.heartbeat_at
    running.refresh_from_db()
    assert running.status == "running"
    assert running.heartbeat_at == beaten


def test_it_asks_the_database_whether_a_cancel_was_requested(running):
    assert not running.cancel_was_requested()

    Run.objects.get(pk=running.pk).request_cancel()

    # This instance was loaded before the cancel; the runner must see it all the same.
    assert not running.cancel_requested
    assert running.cancel_was_requested()


def test_it_tells_the_telemetry_which_gpu_a_child_is_pinned_to():
    assert pinned_gpu({"CUDA_VISIBLE_DEVICES": "2"}) == 2
    assert pinned_gpu({"CUDA_VISIBLE_DEVICES": "-1"}) is None
    assert pinned_gpu({}) is None


def test_it_announces_a_worker_with_its_hardware(db):
    worker = worker_announce(name="gpu-box@host", queues=["gpu", "cpu"], concurrency=2)

    assert worker.queues == ["cpu", "gpu"]
    assert worker.devices["cpu_cores"] == os.cpu_count()
    # The form's advisor speaks for the runners of a queue by these.
    assert worker.devices["cpu_flags"] == cpu_flags()
    assert worker.versions["keras"]
    assert worker.is_alive()


def test_it_offers_the_gpu_models_of_live_workers(db):
    Worker.objects.create(name="a@h", host="h", devices={"gpus": [{"name": "NVIDIA H200"}]})
    Worker.objects.create(name="b@h", host="h", stopped_at=timezone.now(),
                          devices={"gpus": [{"name": "NVIDIA T4"}]})

    choices = dict(hardware_choices())

    assert "gpu:NVIDIA H200" in choices
    assert "gpu:NVIDIA T4" not in choices
    assert {"cpu", "gpu"} <= set(choices)


def test_it_refuses_a_gpu_model_with_cpu_hardware(make_experiment, alice, alice_team):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        make_experiment(team=alice_team, user=alice, hardware="cpu", gpu_model="NVIDIA H200")

    assert "only with hardware gpu" in str(error.value)


def test_it_cancels_from_the_command_line(make_experiment, alice, alice_team, capsys):
    run = make_experiment(team=alice_team, user=alice).runs.get()

    call_command("cancel", str(run.pk))

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "cancelled" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not found"):
        call_command("cancel", "999999")


def test_it_shows_the_runners_page(client, alice, db):
    Worker.objects.create(name="cpu-1@box", host="box", queues=["cpu"],
                          devices={"cpu_model": "Xeon", "cpu_cores": 2, "gpus": []},
                          versions={"keras": "3.15.1", "python": "3.11"})
    client.force_login(alice)

    response = client.get(reverse("runner_list"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "cpu-1@box" in body and "idle" in body
    assert set(response.context["depths"]) >= {"cpu", "gpu"}


def test_it_shows_nothing_of_another_teams_run(client, running, charlie, alice):
    Worker.objects.create(name="w1@host", host="host", queues=["gpu"],
                          devices={"cpu_model": "Xeon", "cpu_cores": 2, "gpus": []},
                          versions={"keras": "3.15.1", "python": "3.11"})
    Run.objects.filter(pk=running.pk).update(device="GPU 3: NVIDIA Secret 80GB")

    for user, sees in ((alice, True), (charlie, False)):
        client.force_login(user)
        for name in ("runner_list", "runner_table"):
            body = client.get(reverse(name)).content.decode()
            assert ("GPU 3: NVIDIA Secret 80GB" in body) is sees, (user, name)
            assert ("a run of another team" in body) is not sees, (user, name)


def test_it_shows_a_worker_busy_benchmarking(client, alice, charlie, alice_team,
                                              make_experiment):
    from experiments.models import Benchmark

    Worker.objects.create(name="w1@host", host="host", queues=["cpu"],
                          devices={"cpu_model": "Xeon", "cpu_cores": 2, "gpus": []},
                          versions={"keras": "3.15.1", "python": "3.11"})
    experiment = make_experiment(team=alice_team, user=alice, name="secret experiment")
    Benchmark.objects.create(experiment=experiment, status="running", worker="w1@host",
                             execution=2, executions=5)

    client.force_login(alice)
    body = client.get(reverse("runner_table")).content.decode()
    assert "busy" in body
    assert "secret experiment</a>: benchmarking: execution 2 of 5" in body
    client.force_login(charlie)
    body = client.get(reverse("runner_table")).content.decode()
    assert "secret experiment" not in body and "a benchmark of another team" in body


def test_it_requires_login_for_the_runners_page(client, db):
    response = client.get(reverse("runner_list"))

    assert response.status_code == 302
