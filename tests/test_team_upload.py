"""TeamUpload: what an uploaded dataset and an uploaded model have in common.

Alice's team uploads one of each; Charlie has no access to them.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.models import Dataset, TeamUpload, UploadedModel


@pytest.fixture
def uploads(alice, alice_team, make_dataset):
    dataset = make_dataset(team=alice_team, name="blobs", input_shape=(8, 8, 1))
    model = UploadedModel.objects.create(
        team=alice_team, name="tiny cnn", file="models/tiny.keras", input_shape=[32, 32, 3],
        num_classes=10, params=1234, layers=5, size_bytes=4321, uploaded_by=alice)
    return dataset, model


def test_it_is_the_base_of_both_kinds_of_upload():
    assert TeamUpload._meta.abstract
    assert issubclass(Dataset, TeamUpload) and issubclass(UploadedModel, TeamUpload)


def test_it_names_and_shapes_each_upload(uploads):
    dataset, model = uploads

    assert (str(dataset), dataset.shape_label) == ("blobs", "8x8x1")
    assert (str(model), model.shape_label) == ("tiny cnn", "32x32x3")


def test_it_shows_a_teams_uploads_to_its_members_only(uploads, alice, charlie):
    dataset, model = uploads

    assert list(Dataset.objects.for_user(alice)) == [dataset]
    assert list(UploadedModel.objects.for_user(alice)) == [model]
    assert not Dataset.objects.for_user(charlie).exists()
    assert not UploadedModel.objects.for_user(charlie).exists()


def test_it_lists_the_newest_first(alice_team, make_dataset):
    older = make_dataset(team=alice_team, name="older")
    Dataset.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))
    newer = make_dataset(team=alice_team, name="newer")

    assert list(Dataset.objects.all()) == [newer, older]


def test_it_keeps_each_kinds_team_relation(uploads, alice_team):
    dataset, model = uploads

    assert list(alice_team.datasets.all()) == [dataset]
    assert list(alice_team.uploaded_models.all()) == [model]
    assert model.uploaded_by.username == "alice"
    assert dataset.uploaded_by is None
