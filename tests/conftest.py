"""Named users and teams for the Django tests, in the manner of healthchecks' BaseTestCase.

Alice administers "Alice's team"; Bob is a viewer in it; Charlie has a team of his own and
no access to Alice's. Nothing here imports TensorFlow: the engine's tests are plain pytest
files and must not pay for Django, and these must not pay for TensorFlow.
"""

import copy

import pytest

TINY_SPEC = {
    "name": "digits, seed MLP",
    "model": {"arch": "seed_mlp", "params": {}},
    "dataset": {"name": "digits"},
    "training": {"epochs": 1, "batch_size": 64},
    "hardware": "cpu",
    "recipes": [],
}


def _tiny_spec(**overrides):
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(copy.deepcopy(overrides))
    return spec


@pytest.fixture
def tiny_spec():
    """A small valid spec (seed MLP on digits, one epoch); top-level keys can be replaced:
    tiny_spec(training={"epochs": 0})."""
    return _tiny_spec


@pytest.fixture(autouse=True)
def _isolated_files(settings, tmp_path_factory):
    # Uploads and run artifacts go to a folder of the test's own (not the test's tmp_path,
    # which some tests list), and pages render without a collectstatic manifest (the
    # production storage refuses names missing from it).
    root = tmp_path_factory.mktemp("accelweb")
    settings.MEDIA_ROOT = root / "media"
    settings.STATIC_ROOT = root / "static"
    settings.STATIC_ROOT.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _user(django_user_model, username):
    # No password: tests log in with force_login, and hashing one costs half a second.
    return django_user_model.objects.create_user(username=username,
                                                 email=f"{username}@example.org")


@pytest.fixture
def alice_team(db):
    from experiments.models import Team

    return Team.objects.create(name="Alice's team")


@pytest.fixture
def alice(django_user_model, alice_team):
    from experiments.models import Membership

    user = _user(django_user_model, "alice")
    Membership.objects.create(team=alice_team, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def bob(django_user_model, alice_team):
    from experiments.models import Membership

    user = _user(django_user_model, "bob")
    Membership.objects.create(team=alice_team, user=user, role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def dave(django_user_model, alice_team):
    """A member of Alice's team: may create, run and sign off, may not manage."""
    from experiments.models import Membership

    user = _user(django_user_model, "dave")
    Membership.objects.create(team=alice_team, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def charlie_team(db):
    from experiments.models import Team

    return Team.objects.create(name="Charlie's team")


@pytest.fixture
def charlie(django_user_model, charlie_team):
    from experiments.models import Membership

    user = _user(django_user_model, "charlie")
    Membership.objects.create(team=charlie_team, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def make_experiment():
    """Create an experiment through the service, as the form and the CLI do.

    Its runs are enqueued on commit; under the `db` fixture the test's transaction never
    commits, so no message reaches a broker.
    """
    from experiments.services import experiment_create

    def make(*, team, user, **overrides):
        return experiment_create(team=team, user=user, spec=_tiny_spec(**overrides))

    return make


@pytest.fixture
def make_dataset():
    """A Dataset row as an upload leaves it; the file itself is not needed to plan a run."""
    from experiments.models import Dataset

    def make(*, team, name="blobs", input_shape=(8, 8, 1), num_classes=3, train_samples=90,
             test_samples=30):
        return Dataset.objects.create(
            team=team, name=name, file=f"datasets/{name}.npz", input_shape=list(input_shape),
            num_classes=num_classes, train_samples=train_samples, test_samples=test_samples,
            size_bytes=1234,
        )

    return make


@pytest.fixture
def api():
    """An API client holding the user's token, as a script would: api(alice)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def client_for(user=None):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


@pytest.fixture
def benchmarked():
    """A succeeded benchmark of the experiment's runs as they are now, with the figures of
    the pairs given: benchmarked(experiment, {"aa": (1.0, [0.97, 1.03]),
    f"run-{pk}": (2.0, [1.8, 2.2])}) (the A/A pair defaults to an honest 1.0)."""
    from experiments.models import Benchmark
    from experiments.services import benchmark_runs

    def make(experiment, pairs=None, *, models=None, invoke=None):
        pairs = {"aa": (1.0, [0.97, 1.03]), **(pairs or {})}
        rows = []
        for pair_id, (speedup, ci) in pairs.items():
            row = {"id": pair_id, "inference_speedup": speedup, "inference_ci": ci,
                   "throughput_speedup": speedup, "throughput_ci": ci,
                   "method": "Student t over 5 units"}
            if invoke and pair_id in invoke:
                row["invoke_speedup"], row["invoke_ci"] = invoke[pair_id]
            rows.append(row)
        return Benchmark.objects.create(
            experiment=experiment, status="succeeded", executions=5, rounds=20,
            runs=benchmark_runs(list(experiment.runs.all())),
            result={"models": models or {}, "pairs": rows})

    return make
