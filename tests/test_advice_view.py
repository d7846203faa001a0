"""The new-experiment form's advisor (experiments.views.pages.experiment_advice): the
form's fields as they stand in, the advisor's rules for them out."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from experiments.models import Run, UploadedModel, Worker
from runners.engine import zoo

URL = reverse("experiment_advice")
MIXED = {"name": "fp16", "steps": [{"technique": "mixed_precision", "policy": "mixed_float16"}]}
XLA = {"name": "XLA", "steps": [{"technique": "xla"}]}
XSS = "<img src=x onerror=alert(1)>"
PLAIN = {"name": "early stop", "steps": [{"technique": "early_stop"}]}


def form_data(team, *recipes, **changes):
    return {
        "name": "digits, seed MLP", "team": team.pk, "hardware": "cpu",
        "arch": "seed_mlp", "mlp_units": 64, "mlp_dropout": 0.2, "dataset": "digits",
        "epochs": 3, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
        "recipes_json": json.dumps(list(recipes)), **changes,
    }


@pytest.fixture
def plain_runner(db):
    """A live CPU runner without 16-bit float or int8 dot-product units, whatever this
    machine has: the advice speaks for the runners of the chosen queue."""
    return Worker.objects.create(name="celery@plain", host="plain", queues=["cpu"],
                                 devices={"cpu_model": "Plain x86", "cpu_cores": 2,
                                          "cpu_flags": ["avx2", "fma"], "gpus": []})


def advise(client, user, data):
    client.force_login(user)
    return client.post(URL, data)


def advised(response):
    assert response.status_code == 200, response.content
    return {recipe["name"]: [item["technique"] for item in recipe["advice"]]
            for recipe in response.json()["recipes"]}


def test_it_advises_alice_for_her_choices(client, alice, alice_team, plain_runner):
    response = advise(client, alice, form_data(alice_team, MIXED, PLAIN, XLA))
    assert advised(response) == {"fp16": ["mixed_precision"], "XLA": ["xla"]}
    body = response.json()
    assert body["hardware"] == "cpu"
    assert body["source"] == "the CPU runner celery@plain"
    assert "mixed_float16 on a CPU without float16" in body["html"]
    assert "Advice for the CPU runner celery@plain" in body["html"]
    digits_mlp = zoo.count_params("seed_mlp", {"units": 64}, [8, 8, 1], 10)
    assert f"({digits_mlp:,} parameters)" in body["html"]


def test_it_says_nothing_for_a_plain_recipe_or_none(client, alice, alice_team, plain_runner):
    for data in (form_data(alice_team, PLAIN), form_data(alice_team)):
        response = advise(client, alice, data)
        assert response.json()["recipes"] == [] and response.json()["html"] == ""


def test_gpu_hardware_changes_the_advice(client, alice, alice_team, plain_runner):
    response = advise(client, alice, form_data(alice_team, MIXED, XLA, hardware="gpu"))
    assert advised(response) == {}
    assert response.json()["hardware"] == "gpu"
    assert response.json()["source"] == "this machine's GPU"


def test_the_model_and_dataset_decide_the_xla_warning(client, alice, alice_team, plain_runner):
    big = form_data(alice_team, XLA, mlp_units=2048)
    assert zoo.count_params("seed_mlp", {"units": 2048}, [8, 8, 1], 10) > 1_000_000
    assert advised(advise(client, alice, big)) == {}
    # The same CNN counts differently for the shape and classes of another dataset.
    cnn = {"arch": "seed_cnn", "cnn_filters": 8, "cnn_dense": 16, "cnn_dropout": 0.5}
    for shape, classes in (((8, 8, 1), 10), ((24, 16, 3), 4)):
        data = form_data(alice_team, XLA, **cnn, **(
            {} if classes == 10 else {
                "dataset": "synthetic", "synthetic_samples": 200, "synthetic_height": shape[0],
                "synthetic_width": shape[1], "synthetic_channels": shape[2],
                "synthetic_classes": classes}))
        count = zoo.count_params("seed_cnn", {"filters": 8, "dense": 16}, shape, classes)
        assert f"({count:,} parameters)" in advise(client, alice, data).json()["html"]


def test_an_uploaded_model_is_advised_on_its_stored_count(client, alice, alice_team,
                                                           plain_runner):
    def upload(params):
        return UploadedModel.objects.create(
            team=alice_team, name=f"mlp {params}", file="models/m.keras", input_shape=[8, 8, 1],
            num_classes=10, params=params, layers=3, size_bytes=1234)

    small, big = upload(1210), upload(5_000_000)
    data = form_data(alice_team, XLA, arch="uploaded", uploaded_model=small.pk)
    assert "(1,210 parameters)" in advise(client, alice, data).json()["html"]
    data["uploaded_model"] = big.pk
    assert advised(advise(client, alice, data)) == {}


def test_another_teams_uploaded_model_is_refused(client, alice, alice_team, charlie_team):
    theirs = UploadedModel.objects.create(
        team=charlie_team, name="secret", file="models/s.keras", input_shape=[8, 8, 1],
        num_classes=10, params=1210, layers=3, size_bytes=1234)
    response = advise(client, alice, form_data(alice_team, XLA, arch="uploaded",
                                               uploaded_model=theirs.pk))
    assert response.status_code == 400
    assert "uploaded_model" in response.json()["errors"]
    assert "secret" not in response.content.decode()


def test_a_recipe_name_is_shown_as_text(client, alice, alice_team, plain_runner):
    html = advise(client, alice, form_data(alice_team, {**XLA, "name": XSS})).json()["html"]
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_bad_json_is_a_400_with_a_message(client, alice, alice_team):
    response = advise(client, alice, {**form_data(alice_team), "recipes_json": '[{"name": '})
    assert response.status_code == 400
    [message] = response.json()["errors"]["recipes_json"]
    assert message.startswith("The recipes are not valid JSON")


def test_a_bad_recipe_is_a_400_with_its_message(client, alice, alice_team):
    response = advise(client, alice, form_data(alice_team, {"name": "?", "steps": [
        {"technique": "warp_drive"}]}))
    assert response.status_code == 400
    assert "warp_drive" in json.dumps(response.json()["errors"])


def test_errors_the_advice_does_not_depend_on_do_not_silence_it(client, alice, alice_team,
                                                                 plain_runner):
    data = form_data(alice_team, MIXED, name="", epochs=0, learning_rate="fast")
    assert advised(advise(client, alice, data)) == {"fp16": ["mixed_precision"]}
    # With one it depends on too: that one is named first.
    data["recipes_json"] = "[{"
    response = advise(client, alice, data)
    assert response.status_code == 400
    assert list(response.json()["errors"])[0] == "recipes_json"
    assert {"name", "epochs", "learning_rate"} <= set(response.json()["errors"])


def test_the_form_with_errors_still_shows_its_advice_without_js(client, alice, alice_team,
                                                                plain_runner):
    client.force_login(alice)
    response = client.post(reverse("experiment_new"), form_data(alice_team, MIXED, name=""))
    page = response.content.decode()
    assert response.status_code == 400 and "This field is required" in page
    assert "mixed_float16 on a CPU without float16" in page


def test_it_speaks_for_the_runner_of_the_latest_run_without_a_live_one(
        client, alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice)
    Run.objects.filter(experiment=experiment).update(
        status=Run.Status.SUCCEEDED, worker="celery@fp16",
        result={"fingerprint": {"cpu_flags": ["avx2", "avx512_fp16"]}})
    response = advise(client, alice, form_data(alice_team, MIXED, XLA))
    assert advised(response) == {"XLA": ["xla"]}
    assert response.json()["source"] == "the CPU runner of your latest run (celery@fp16)"


def test_a_stopped_runner_is_not_spoken_for(client, alice, alice_team, plain_runner):
    from django.utils import timezone

    Worker.objects.filter(pk=plain_runner.pk).update(stopped_at=timezone.now())
    response = advise(client, alice, form_data(alice_team, MIXED))
    assert response.json()["source"] == "this machine's CPU"


def test_its_queries_do_not_grow_with_the_recipes(client, alice, alice_team, plain_runner,
                                                  django_assert_max_num_queries):
    client.force_login(alice)
    for recipes in ([MIXED], [MIXED, XLA, PLAIN] * 5):
        with django_assert_max_num_queries(7):
            response = client.post(URL, form_data(alice_team, *[
                {**recipe, "name": f"{recipe['name']} {i}"} for i, recipe in enumerate(recipes)]))
        assert response.status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(client, alice_team):
    response = client.post(URL, form_data(alice_team, MIXED))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_it_needs_the_csrf_token_and_a_post(alice, alice_team):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(URL, form_data(alice_team, MIXED)).status_code == 403
    assert client.get(URL).status_code == 405


def test_the_page_renders_the_advice_for_the_form_it_shows(client, bob, alice_team,
                                                           plain_runner):
    # Bob may not queue runs in Alice's team: the form comes back, with its advice, which
    # must also show without JavaScript.
    client.force_login(bob)
    response = client.post(reverse("experiment_new"), form_data(alice_team, MIXED))
    page = response.content.decode()
    assert response.status_code == 400 and "Viewers cannot start experiments" in page
    assert 'id="advice"' in page and "mixed_float16 on a CPU without float16" in page
    page = client.get(reverse("experiment_new")).content.decode()
    assert 'id="advice" aria-live="polite"' in page
    assert "mixed_float16 on a CPU" not in page and "Advice for" not in page
