import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Experiment, Membership, Team


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
    assert "  hardware: Hardware must be one of cpu, gpu." in message
    assert not Experiment.objects.exists()


def test_it_refuses_an_unknown_user(alice, spec_file):
    with pytest.raises(CommandError, match="No user named 'zed'."):
        submit(spec_file(), "--user", "zed")

    assert not Experiment.objects.exists()
    assert not Team.objects.exclude(name="Alice's team").exists()
