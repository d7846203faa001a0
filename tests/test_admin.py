import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from experiments.models import Run, RunEvent, SignOff, WithdrawnSignOff


@pytest.fixture
def admin_client_with_data(client, alice, alice_team, make_experiment, make_dataset):
    # A superuser without a password (pytest-django's admin_client hashes one: slow).
    root = get_user_model().objects.create_superuser("root", "root@example.org", None)
    client.force_login(root)
    experiment = make_experiment(team=alice_team, user=alice, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]}])
    run = experiment.runs.get(name="baseline")
    RunEvent.objects.create(run=run, seq=1, kind="epoch", data={"event": "epoch", "epoch": 1})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, worker="celery@one",
                                         result={"test_accuracy": 0.93})
    make_dataset(team=alice_team)
    return client


def changelist(model):
    return reverse(f"admin:experiments_{model._meta.model_name}_changelist")


def test_it_registers_every_model():
    for model in apps.get_app_config("experiments").get_models():
        assert admin.site.is_registered(model), model.__name__
    assert admin.site.is_registered(get_user_model())


@pytest.mark.parametrize("model, params", [
    ("team", {"q": "alice"}),
    ("membership", {"q": "alice", "role__exact": "admin"}),
    ("dataset", {"q": "blobs", "num_classes": "3"}),
    ("experiment", {"q": "digits", "hardware": "cpu"}),
    ("run", {"q": "baseline", "status__exact": "succeeded", "worker": "celery@one"}),
    ("run", {"q": "XLA", "status__exact": "queued", "experiment__hardware": "cpu"}),
    ("runevent", {"q": "digits", "kind": "epoch"}),
])
def test_it_loads_the_changelists(admin_client_with_data, model, params):
    model_class = apps.get_model("experiments", model)

    plain = admin_client_with_data.get(changelist(model_class))
    searched = admin_client_with_data.get(changelist(model_class), params)

    assert plain.status_code == 200
    assert searched.status_code == 200
    # A filter Django does not know redirects with ?e=1; these must be real filters.
    assert "e=1" not in searched.request["QUERY_STRING"]
    assert searched.context["cl"].result_count >= 1, params


def test_it_filters_runs(admin_client_with_data):
    response = admin_client_with_data.get(changelist(Run), {"status__exact": "succeeded"})

    assert [run.name for run in response.context["cl"].result_list] == ["baseline"]


def test_it_loads_the_change_pages(admin_client_with_data, alice_team):
    run = Run.objects.get(name="baseline")
    for url in (reverse("admin:experiments_experiment_change", args=[run.experiment_id]),
                reverse("admin:experiments_run_change", args=[run.pk]),
                reverse("admin:experiments_team_change", args=[alice_team.pk])):
        assert admin_client_with_data.get(url).status_code == 200, url


def test_it_keeps_non_staff_out(client, alice):
    client.force_login(alice)

    response = client.get(changelist(Run))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_it_cancels_queued_runs(admin_client_with_data):
    queued = Run.objects.get(name="XLA")
    succeeded = Run.objects.get(name="baseline")

    response = admin_client_with_data.post(changelist(Run), {
        "action": "cancel_runs", "_selected_action": [queued.pk, succeeded.pk],
    }, follow=True)

    assert response.status_code == 200
    queued.refresh_from_db()
    succeeded.refresh_from_db()
    assert queued.status == Run.Status.CANCELLED
    assert succeeded.status == Run.Status.SUCCEEDED
    body = response.content.decode()
    assert "Cancelled 1 run(s)." in body
    assert "1 run(s) were left alone" in body


def test_it_reruns_a_failed_run(admin_client_with_data, django_capture_on_commit_callbacks):
    failed = Run.objects.get(name="XLA")
    Run.objects.filter(pk=failed.pk).update(status=Run.Status.FAILED, error="boom")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client_with_data.post(changelist(Run), {
            "action": "rerun_runs", "_selected_action": [failed.pk],
        })

    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == Run.Status.QUEUED
    assert failed.error == ""
    assert len(callbacks) == 1


def test_it_cancels_every_open_run_of_an_experiment(admin_client_with_data):
    experiment = Run.objects.get(name="XLA").experiment

    admin_client_with_data.post(changelist(type(experiment)), {
        "action": "cancel_experiments", "_selected_action": [experiment.pk],
    })

    statuses = dict(experiment.runs.values_list("name", "status"))
    assert statuses == {"baseline": "succeeded", "XLA": "cancelled"}


def test_it_reruns_every_ended_run_of_an_experiment(admin_client_with_data,
                                                    django_capture_on_commit_callbacks):
    experiment = Run.objects.get(name="XLA").experiment

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client_with_data.post(changelist(type(experiment)), {
            "action": "rerun_experiments", "_selected_action": [experiment.pk],
        })

    statuses = dict(experiment.runs.values_list("name", "status"))
    assert statuses == {"baseline": "queued", "XLA": "queued"}
    assert not RunEvent.objects.exists()
    assert len(callbacks) == 1


def test_deleting_a_sign_off_withdraws_it_and_keeps_the_record(admin_client_with_data, alice):
    run = Run.objects.get(name="XLA")
    signoff = SignOff.objects.create(experiment=run.experiment, run=run, approved_by=alice,
                                     model_label="seed_mlp on digits", evidence={"row": {}})
    url = reverse("admin:experiments_signoff_changelist")

    response = admin_client_with_data.post(url, {
        "action": "delete_selected", "_selected_action": [signoff.pk], "post": "yes"})

    assert response.status_code == 302
    assert not SignOff.objects.exists()
    withdrawn = WithdrawnSignOff.objects.get()
    assert (withdrawn.run, withdrawn.approved_by, withdrawn.reason) == (
        run, alice, "deleted in the admin")
    assert withdrawn.withdrawn_by.username == "root"
    page = admin_client_with_data.get(reverse("admin:experiments_withdrawnsignoff_changelist"))
    assert page.status_code == 200 and page.context["cl"].result_count == 1
    assert admin_client_with_data.get(
        reverse("admin:experiments_withdrawnsignoff_add")).status_code == 403
