import html
import json
import re

import numpy as np
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from results import benchmark_results

from experiments import services
from experiments.models import Dataset, Experiment, Run

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
    ])


def form_data(team, **changes):
    return {
        "name": "digits, seed MLP", "team": team.pk, "hardware": "cpu",
        "arch": "seed_mlp", "mlp_units": 64, "mlp_dropout": 0.2, "dataset": "digits",
        "epochs": 3, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
        **changes,
    }


def experiment_pages(pk):
    return [
        reverse("experiment_detail", args=[pk]),
        reverse("experiment_results", args=[pk]),
        reverse("experiment_spec", args=[pk]),
    ]


def add_epochs(run, count):
    # As the worker stores them, the run's stored curves included.
    services.run_record_events(run, [
        {"event": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5}
        for epoch in range(1, count + 1)])


def snapshot_of(response):
    found = re.search(
        r'<script id="experiment-snapshot" type="application/json">(.*?)</script>',
        response.content.decode(), re.S,
    )
    return json.loads(found.group(1))


# Login


def test_it_sends_anonymous_visitors_to_log_in(client, experiment):
    run = experiment.runs.first()
    pages = [reverse("home"), reverse("experiment_new"), reverse("dataset_list"),
             *experiment_pages(experiment.pk)]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url == f"{reverse('login')}?next={url}"
    for url in (reverse("run_cancel", args=[run.pk]), reverse("run_rerun", args=[run.pk])):
        response = client.post(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login"))

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED


def test_it_serves_the_login_page(client):
    assert client.get(reverse("login")).status_code == 200


# Team scoping


def test_it_hides_another_teams_experiment(client, charlie, experiment):
    client.force_login(charlie)

    for url in experiment_pages(experiment.pk):
        assert client.get(url).status_code == 404, url
    for name in ("run_cancel", "run_rerun"):
        for run in experiment.runs.all():
            assert client.post(reverse(name, args=[run.pk])).status_code == 404


def test_it_leaves_another_teams_runs_alone(client, charlie, experiment):
    client.force_login(charlie)
    run = experiment.runs.first()

    client.post(reverse("run_cancel", args=[run.pk]))

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert not run.cancel_requested


def test_it_lists_only_the_users_experiments(client, alice, charlie, charlie_team, experiment,
                                             make_experiment):
    make_experiment(team=charlie_team, user=charlie, name="Charlie's secret")
    client.force_login(alice)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert [e.pk for e in response.context["experiments"]] == [experiment.pk]
    assert "Charlie&#x27;s secret" not in response.content.decode()


def test_it_shows_the_spec(client, alice, experiment):
    client.force_login(alice)

    response = client.get(reverse("experiment_spec", args=[experiment.pk]))

    assert response.status_code == 200
    assert response.json() == experiment.spec
    assert response["Content-Disposition"] == (
        f'attachment; filename="experiment-{experiment.pk}.json"'
    )


def test_it_counts_one_epoch_as_one(client, alice, alice_team, make_experiment):
    one = make_experiment(team=alice_team, user=alice, training={"epochs": 1, "batch_size": 64})
    two = make_experiment(team=alice_team, user=alice, training={"epochs": 2, "batch_size": 64})
    client.force_login(alice)
    assert "1 epoch, batch 64" in client.get(reverse("experiment_detail", args=[one.pk])).text
    assert "2 epochs, batch 64" in client.get(reverse("experiment_detail", args=[two.pk])).text


def test_the_run_page_offers_cancel_or_rerun_and_says_how_long_it_took(
        client, alice, bob, experiment):
    from datetime import timedelta

    from django.utils import timezone

    run = experiment.runs.get(position=0)
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk])).text
    assert f'action="{reverse("run_cancel", args=[run.pk])}" data-confirm="Cancel' in page
    started = timezone.now() - timedelta(minutes=10)
    Run.objects.filter(pk=run.pk).update(status="succeeded", started_at=started,
                                         finished_at=started + timedelta(seconds=125))
    page = client.get(reverse("run_detail", args=[run.pk])).text
    assert f'action="{reverse("run_rerun", args=[run.pk])}" data-confirm="Run' in page
    assert "took 2 min 05 s" in page
    assert "took 2 min 05 s" in client.get(
        reverse("experiment_results", args=[experiment.pk])).text
    client.force_login(bob)  # a viewer: neither
    page = client.get(reverse("run_detail", args=[run.pk])).text
    assert "data-confirm" not in page and "took 2 min 05 s" in page


@pytest.mark.parametrize("seconds, said", [
    (None, ""), (0.4, "0 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"),
    (3 * 3600 + 5 * 60 + 9, "3 h 05 min"), (float("nan"), "")])
def test_durations_read_as_people_say_them(seconds, said):
    from experiments.templatetags.figures import duration

    assert duration(seconds) == said


# New experiment


def test_it_shows_the_form(client, alice):
    client.force_login(alice)

    response = client.get(reverse("experiment_new"))

    assert response.status_code == 200
    assert list(response.context["form"].fields["team"].queryset) == list(alice.teams.all())


def test_it_creates_an_experiment_with_a_baseline_and_one_run_per_recipe(
        client, alice, alice_team, django_capture_on_commit_callbacks):
    client.force_login(alice)
    recipes = [
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8 (dynamic range)", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
        {"name": "float16 (TFLite)", "steps": [{"technique": "ptq", "mode": "float16"}]},
    ]
    data = form_data(alice_team, recipes_json=json.dumps(recipes))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("experiment_new"), data)

    experiment = Experiment.objects.get()
    assert response.status_code == 302
    assert [m.message for m in get_messages(response.wsgi_request)] == ["Queued 4 runs."]
    assert response.url == experiment.get_absolute_url()
    assert experiment.team == alice_team
    assert experiment.created_by == alice
    assert experiment.spec["training"]["epochs"] == 3
    runs = list(experiment.runs.order_by("position"))
    assert [(r.name, r.position, r.status) for r in runs] == [
        ("baseline", 0, "queued"), ("XLA", 1, "queued"),
        ("int8 (dynamic range)", 2, "queued"), ("float16 (TFLite)", 3, "queued"),
    ]
    assert runs[0].steps == []
    # One enqueue per run, and only once the rows are committed.
    assert len(callbacks) == 4


def test_it_answers_an_invalid_form_with_400_and_the_message(client, alice, alice_team,
                                                              django_capture_on_commit_callbacks):
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("experiment_new"),
                               form_data(alice_team, batch_size=5000))

    assert response.status_code == 400
    assert ("Batch size 5,000 is larger than the 1,293 training samples of this dataset."
            in response.content.decode())
    assert not Experiment.objects.exists()
    assert callbacks == []


def test_it_answers_garbage_with_400_not_500(client, alice, alice_team):
    client.force_login(alice)
    garbage = {**form_data(alice_team), "epochs": "many", "team": "nope",
               "arch": "transformer", "dataset": "imagenet", "learning_rate": "NaN",
               "synthetic_samples": "-"}

    response = client.post(reverse("experiment_new"), garbage)

    assert response.status_code == 400
    assert "Enter a whole number." in response.content.decode()
    assert not Experiment.objects.exists()


def test_it_refuses_a_viewer_who_starts_an_experiment(client, bob, alice_team):
    client.force_login(bob)

    response = client.post(reverse("experiment_new"), form_data(alice_team))

    assert response.status_code == 400
    assert "Viewers cannot start experiments in this team." in response.content.decode()
    assert not Experiment.objects.exists()


def test_it_gives_a_user_without_a_team_a_team(client, django_user_model):
    dave = django_user_model.objects.create_user("dave")
    client.force_login(dave)

    response = client.get(reverse("experiment_new"))

    assert response.status_code == 200
    assert [t.name for t in dave.teams.all()] == ["dave's team"]


def test_it_preselects_a_dataset(client, alice, alice_team, make_dataset):
    blobs = make_dataset(team=alice_team)
    client.force_login(alice)

    response = client.get(reverse("experiment_new"), {"dataset": blobs.pk})

    assert response.status_code == 200
    assert response.context["form"].initial == {"dataset": "npz", "npz_dataset": str(blobs.pk)}


# Cancel and re-run


def test_it_cancels_a_queued_run(client, alice, experiment):
    client.force_login(alice)
    run = experiment.runs.get(name="XLA")

    response = client.post(reverse("run_cancel", args=[run.pk]))

    assert response.status_code == 302
    assert response.url == experiment.get_absolute_url()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert experiment.runs.get(name="baseline").status == Run.Status.QUEUED


def test_it_refuses_a_viewer_who_cancels(client, bob, experiment):
    client.force_login(bob)
    run = experiment.runs.first()

    response = client.post(reverse("run_cancel", args=[run.pk]))

    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED


def test_it_refuses_a_viewer_who_reruns(client, bob, experiment):
    client.force_login(bob)
    run = experiment.runs.first()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, error="boom")

    response = client.post(reverse("run_rerun", args=[run.pk]))

    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


def test_it_refuses_get_on_cancel(client, alice, experiment):
    client.force_login(alice)
    run = experiment.runs.first()

    assert client.get(reverse("run_cancel", args=[run.pk])).status_code == 405
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED


def test_it_reruns_a_failed_run(client, alice, experiment, django_capture_on_commit_callbacks):
    client.force_login(alice)
    run = experiment.runs.first()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, error="boom")
    add_epochs(run, 2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("run_rerun", args=[run.pk]))

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert run.error == ""
    assert not run.events.exists()
    assert len(callbacks) == 1


def test_it_does_not_rerun_a_queued_run(client, alice, experiment,
                                        django_capture_on_commit_callbacks):
    client.force_login(alice)
    run = experiment.runs.first()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("run_rerun", args=[run.pk]), follow=True)

    assert "has not ended yet" in response.content.decode()
    assert callbacks == []


# The experiment page


def test_it_shows_the_experiment(client, alice, experiment):
    run = experiment.runs.first()
    add_epochs(run, 2)
    client.force_login(alice)

    response = client.get(reverse("experiment_detail", args=[experiment.pk]))

    assert response.status_code == 200
    snapshot = snapshot_of(response)
    assert snapshot["experiment"] == {"id": experiment.pk, "name": experiment.name}
    assert [r["name"] for r in snapshot["runs"]] == ["baseline", "XLA"]
    # The snapshot says how far each run got; the curves are fetched (experiment_curves).
    assert snapshot["runs"][0]["last_epoch"] == 2 and "series" not in snapshot["runs"][0]
    assert snapshot["runs"][0]["summary"]["loss"]["last"] == 0.5
    assert f'data-curves-url="/experiments/{experiment.pk}/curves/"' in response.content.decode()
    assert f'data-ws-path="/ws/experiments/{experiment.pk}/"' in response.content.decode()


@pytest.mark.parametrize("user, shown", [("alice", True), ("bob", False)])
def test_it_shows_run_buttons_only_to_those_who_may_use_them(client, request, experiment,
                                                              user, shown):
    baseline, xla = experiment.runs.order_by("position")
    Run.objects.filter(pk=xla.pk).update(status=Run.Status.SUCCEEDED)
    client.force_login(request.getfixturevalue(user))
    buttons = [reverse("run_cancel", args=[baseline.pk]), reverse("run_rerun", args=[xla.pk])]

    for url in (reverse("experiment_detail", args=[experiment.pk]),
                reverse("experiment_results", args=[experiment.pk])):
        body = client.get(url).content.decode()
        assert all((f'action="{button}"' in body) is shown for button in buttons), url
    body = client.get(reverse("run_detail", args=[xla.pk])).content.decode()
    assert (f'action="{reverse("run_save_recipe", args=[xla.pk])}"' in body) is shown
    assert ("Save to the recipe library" in body) is shown


def _detail_queries(client, experiment, django_assert_max_num_queries, bound):
    url = reverse("experiment_detail", args=[experiment.pk])
    # Results written behind the services' back (update()): the first view computes and
    # stores the evidence, as the end of a run would have. Views after it only read it.
    client.get(url)
    with django_assert_max_num_queries(bound) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


# Session, user, experiment with its team, runs (their curves' summary read out by the
# database), the benchmarks, the stored evidence, whether the
# user may change the runs (their role); the sign-offs (the user's role, sign-offs,
# withdrawn sign-offs) and the comments (the user's role, comments).
DETAIL_QUERIES = 12


def test_it_draws_the_page_in_a_fixed_number_of_queries(
        client, alice, alice_team, make_experiment, django_assert_max_num_queries):
    small = make_experiment(team=alice_team, user=alice, training={"epochs": 1})
    add_epochs(small.runs.get(), 1)
    recipes = [{"name": f"XLA {i}", "steps": [{"technique": "xla"}]} for i in range(4)]
    large = make_experiment(team=alice_team, user=alice, training={"epochs": 50},
                            recipes=recipes)
    for run in large.runs.all():
        add_epochs(run, 50)
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.SUCCEEDED, result={"latency_ms_p50": 1.0, "model_bytes": 100})
    assert large.runs.count() == 5
    client.force_login(alice)

    small_count = _detail_queries(client, small, django_assert_max_num_queries, DETAIL_QUERIES)
    large_count = _detail_queries(client, large, django_assert_max_num_queries, DETAIL_QUERIES)

    assert small_count == large_count == DETAIL_QUERIES


def test_it_shows_a_failed_runs_error_and_stderr_escaped(client, alice, experiment):
    run = experiment.runs.get(name="XLA")
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.FAILED, error="ValueError: <script>alert('error')</script>",
        stderr_tail="Traceback (most recent call last):\n  <b>bold</b> & more\nValueError",
    )
    client.force_login(alice)

    response = client.get(reverse("experiment_results", args=[experiment.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "“XLA” failed" in body
    assert "ValueError: &lt;script&gt;alert(&#x27;error&#x27;)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in body
    assert "<script>alert" not in body
    assert "<b>bold</b>" not in body


def test_it_shows_results_and_speedups(client, alice, experiment):
    fingerprint = {"cpu_model": "x86", "backend": "tensorflow"}
    Run.objects.filter(experiment=experiment, name="baseline").update(
        status=Run.Status.SUCCEEDED,
        result={"latency_ms_p50": 2.0, "model_bytes": 400, "test_accuracy": 0.9,
                "fingerprint": fingerprint, "runtime": "keras"})
    Run.objects.filter(experiment=experiment, name="XLA").update(
        status=Run.Status.SUCCEEDED,
        result={"latency_ms_p50": 1.0, "model_bytes": 400, "test_accuracy": 0.9,
                "fingerprint": fingerprint, "runtime": "keras"})
    client.force_login(alice)
    waiting = client.get(reverse("experiment_results", args=[experiment.pk])).content.decode()
    benchmark_results(experiment)

    response = client.get(reverse("experiment_results", args=[experiment.pk]))

    # Each run timed itself alone: no speedup until the benchmark measured both together.
    assert "2.00×" not in waiting and "not benchmarked: re-benchmark" in waiting
    assert response.status_code == 200
    body = response.content.decode()
    assert "2.00×" in body
    assert 'id="noise-floor">Noise floor: baseline vs itself' in body
    assert [row["name"] for row in response.context["comparison"]] == [
        "Noise floor: baseline vs itself", "XLA"]


def test_it_flags_a_baseline_at_chance_and_offers_no_sign_off(client, alice, experiment):
    baseline, xla = experiment.runs.order_by("position")
    fingerprint = {"cpu_model": "x86", "backend": "tensorflow"}

    def score(run, accuracy, latency):
        Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, result={
            "latency_ms_p50": latency, "model_bytes": 400, "test_accuracy": accuracy,
            "test_samples": 1000, "fingerprint": fingerprint, "runtime": "keras"})

    score(baseline, 0.102, 2.0)
    score(xla, 0.5, 1.0)
    benchmark_results(experiment)
    client.force_login(alice)
    signoff_action = f'action="{reverse("run_signoff", args=[xla.pk])}"'

    body = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    flag = re.search(r'<p[^>]*id="baseline-at-chance"[^>]*>(.*?)</p>', body, re.S)
    assert flag, "no chance-level flag on the page"
    assert flag.group(1).startswith(
        "The baseline scored 10.2% test accuracy, which is chance level for 10 classes "
        "(10%, interval 8.1-11.9% for 1,000 test samples): there is nothing to compare.")
    row = re.search(rf'<tr id="signoff-run-{xla.pk}">.*?</tr>', body, re.S).group(0)
    assert "Not eligible." in row and "which is chance level for 10 classes" in row
    assert signoff_action not in body
    # A baseline that learnt something: no flag, and the faster recipe can be signed off.
    score(baseline, 0.45, 2.0)
    benchmark_results(experiment)
    body = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert 'id="baseline-at-chance"' not in body
    assert signoff_action in body


def test_it_escapes_a_hostile_experiment_name(client, alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice, name=XSS, recipes=[
        {"name": XSS, "steps": [{"technique": "xla"}]}])
    client.force_login(alice)

    for url in (reverse("home"), reverse("experiment_detail", args=[experiment.pk]),
                reverse("experiment_results", args=[experiment.pk])):
        body = client.get(url).content.decode()
        assert XSS not in body, url
        assert "<img" not in body, url
        assert html.escape(XSS) in body or "\\u003Cimg" in body, url

    detail = client.get(reverse("experiment_detail", args=[experiment.pk]))
    raw_script = re.search(r'<script id="experiment-snapshot"[^>]*>(.*?)</script>',
                           detail.content.decode(), re.S).group(1)
    assert "<" not in raw_script
    assert "\\u003Cimg src=x onerror=alert(1)\\u003E" in raw_script
    assert snapshot_of(detail)["experiment"]["name"] == XSS


# Datasets


def npz_bytes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=rng.random((30, 5), dtype=np.float32), y_train=np.arange(30) % 3,
             x_test=rng.random((10, 5), dtype=np.float32), y_test=np.arange(10) % 3)
    return path.read_bytes()


def test_it_uploads_a_dataset(client, alice, alice_team, tmp_path, settings):
    client.force_login(alice)
    upload = SimpleUploadedFile("blobs.npz", npz_bytes(tmp_path))

    response = client.post(reverse("dataset_list"),
                           {"name": "Blobs", "team": alice_team.pk, "file": upload})

    assert response.status_code == 302
    dataset = Dataset.objects.get()
    assert (dataset.team, dataset.name, dataset.uploaded_by) == (alice_team, "Blobs", alice)
    assert dataset.input_shape == [5]
    assert (dataset.num_classes, dataset.train_samples, dataset.test_samples) == (3, 27, 10)
    assert dataset.size_bytes == upload.size
    assert dataset.file.path.startswith(str(settings.MEDIA_ROOT))
    with np.load(dataset.file.path, allow_pickle=False) as saved:
        assert saved["x_train"].shape == (30, 5)


def test_it_says_which_training_samples_are_held_out_for_validation(client, alice, alice_team,
                                                                    tmp_path, make_dataset):
    rng = np.random.default_rng(0)
    path = tmp_path / "hundred.npz"
    np.savez(path, x_train=rng.random((100, 5), dtype=np.float32), y_train=np.arange(100) % 4,
             x_test=rng.random((20, 5), dtype=np.float32), y_test=np.arange(20) % 4)
    client.force_login(alice)
    split = ("90 train + 10 validation (held out from the file's 100 training samples)")

    response = client.post(reverse("dataset_list"), {
        "name": "Hundred", "team": alice_team.pk,
        "file": SimpleUploadedFile("hundred.npz", path.read_bytes())}, follow=True)

    body = response.content.decode()
    assert html.escape(f"Uploaded “Hundred” (5, 4 classes): {split}, 20 test.") in body
    # 101 samples leave 90 to train on as well: the file, not train_samples, tells them apart.
    assert Dataset.objects.get().train_samples == 90
    row = re.search(r"<tr><td>Hundred</td>.*?</tr>", body, re.S).group(0)
    assert html.escape(split) in row
    form = client.get(reverse("experiment_new")).content.decode()
    assert html.escape(f"Hundred: 5, 4 classes, {split}, 20 test") in form
    # An upload whose file is gone still lists, with what the row alone tells.
    make_dataset(team=alice_team, name="gone", train_samples=90)
    body = client.get(reverse("dataset_list")).content.decode()
    row = re.search(r"<tr><td>gone</td>.*?</tr>", body, re.S).group(0)
    assert html.escape("90 train (after holding out 10% of the file's training samples for "
                       "validation)") in row


def test_it_refuses_a_bad_upload_with_400(client, alice, alice_team):
    client.force_login(alice)
    upload = SimpleUploadedFile("blobs.csv", b"1,2,3\n")

    response = client.post(reverse("dataset_list"),
                           {"name": "Blobs", "team": alice_team.pk, "file": upload})

    assert response.status_code == 400
    assert "Upload a .npz file." in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_lists_only_the_teams_datasets(client, alice, alice_team, charlie_team,
                                          make_dataset):
    make_dataset(team=alice_team, name="alice-blobs")
    make_dataset(team=charlie_team, name="charlie-blobs")
    client.force_login(alice)

    response = client.get(reverse("dataset_list"))

    assert response.status_code == 200
    assert [d.name for d in response.context["datasets"]] == ["alice-blobs"]
    assert "charlie-blobs" not in response.content.decode()


# Error pages


def test_a_missing_page_has_the_layout_and_a_way_back(client, alice):
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'class="topbar"' in page and f'href="{reverse("experiment_list")}"' in page


def test_the_server_error_page_has_the_layout_without_a_request():
    # Django renders 500.html with no context at all: it must not need one.
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert 'class="topbar"' in page and f'href="{reverse("home")}"' in page


def test_admin_pages_name_the_site_and_ask_for_no_favicon(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "AccelWeb admin" in page and '<link rel="icon" href="data:,">' in page
