"""Failed logins are rate-limited per username and address (django-axes), on the site's login
page and the admin's alike; a lockout is a page that says how long to wait, with 429."""

import pytest
from axes.exceptions import AxesBackendRequestParameterRequired
from django.http import HttpRequest
from django.urls import reverse

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Each attempt hashes a password; the default hasher would make these tests slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def erin(django_user_model, db):
    return django_user_model.objects.create_user("erin", password=PASSWORD)


@pytest.fixture
def frank(django_user_model, db):
    return django_user_model.objects.create_user("frank", password=PASSWORD)


@pytest.fixture
def root(django_user_model, db):
    return django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)


def attempt(client, username, password, url="login"):
    return client.post(reverse(url), {"username": username, "password": password})


def fail(client, username, times, url="login"):
    return [attempt(client, username, "wrong", url).status_code for _ in range(times)]


def assert_locked_out(response):
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "Try again in 15 minutes" in page
    assert "_auth_user_id" not in response.client.session


def test_it_logs_in_with_the_right_password(client, erin):
    response = attempt(client, "erin", PASSWORD)

    assert response.status_code == 302
    assert response.url == reverse("home")
    assert client.session["_auth_user_id"] == str(erin.pk)


def test_it_shows_the_form_again_below_the_limit(client, erin):
    assert fail(client, "erin", 4) == [200] * 4

    response = attempt(client, "erin", PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(erin.pk)


def test_it_locks_out_after_the_failure_limit_even_with_the_right_password(client, erin):
    # The fifth failure reaches the limit: that very attempt already gets the lockout page.
    assert fail(client, "erin", 5) == [200, 200, 200, 200, 429]

    response = attempt(client, "erin", PASSWORD)

    assert_locked_out(response)
    assert "“erin” has failed to log in\n    5 times" in response.content.decode()


def test_it_reads_the_limit_and_cool_off_from_settings(client, erin, settings):
    from datetime import timedelta

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)

    assert fail(client, "erin", 2) == [200, 429]

    response = attempt(client, "erin", PASSWORD)
    assert response.status_code == 429
    assert "Try again in 1 minute:" in response.content.decode()


def test_it_resets_the_count_after_a_success(client, erin):
    fail(client, "erin", 4)
    assert attempt(client, "erin", PASSWORD).status_code == 302
    client.logout()

    # Four more failures would make eight in all, but the success started the count again.
    assert fail(client, "erin", 4) == [200] * 4
    assert attempt(client, "erin", PASSWORD).status_code == 302


def test_it_leaves_another_username_alone(client, erin, frank):
    fail(client, "erin", 5)

    response = attempt(client, "frank", PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(frank.pk)
    client.logout()
    assert_locked_out(attempt(client, "erin", PASSWORD))


def test_it_leaves_the_same_username_from_another_address_alone(client, erin):
    fail(client, "erin", 5)

    response = client.post(reverse("login"), {"username": "erin", "password": PASSWORD},
                           REMOTE_ADDR="10.0.0.7")

    assert response.status_code == 302


def test_it_rate_limits_the_admin_login(client, root):
    assert fail(client, "root", 5, url="admin:login") == [200, 200, 200, 200, 429]

    response = attempt(client, "root", PASSWORD, url="admin:login")

    assert_locked_out(response)
    assert client.get(reverse("admin:index")).status_code == 302


def test_the_admin_and_the_site_share_the_count(client, root):
    fail(client, "root", 3, url="admin:login")
    fail(client, "root", 2)

    assert_locked_out(attempt(client, "root", PASSWORD))
    assert_locked_out(attempt(client, "root", PASSWORD, url="admin:login"))


def test_the_admin_login_works_with_the_right_password(client, root):
    response = attempt(client, "root", PASSWORD, url="admin:login")

    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_test_clients_login_needs_a_request_under_axes(client, erin):
    # Client.login() calls authenticate() without a request, which the axes backend refuses;
    # tests log in with force_login, or hand login() a request as axes' documentation says.
    with pytest.raises(AxesBackendRequestParameterRequired):
        client.login(username="erin", password=PASSWORD)

    assert not client.login(request=HttpRequest(), username="erin", password="wrong")
    assert client.login(request=HttpRequest(), username="erin", password=PASSWORD)
    assert client.session["_auth_user_id"] == str(erin.pk)
