"""The new-experiment form's advice follows the choices in the browser: hardware, model and
recipes changed in Chromium, the advice box shows and hides what the server's advisor says.

The page is served by uvicorn on the test database (livestack.web_stack)."""

import pytest
from django.conf import settings
from django.test import Client
from livestack import web_stack

from experiments.models import Worker

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("advice-live")) as stack:
        yield stack


@pytest.fixture
def plain_runner(db):
    # Whatever this machine has, the CPU queue's runner lacks 16-bit float units.
    return Worker.objects.create(name="celery@plain", host="plain", queues=["cpu"],
                                 devices={"cpu_model": "Plain x86", "cpu_cores": 2,
                                          "cpu_flags": ["avx2", "fma"], "gpus": []})


def session_of(user):
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_the_advice_follows_the_hardware_the_model_and_the_recipes(server, alice, alice_team,
                                                                    plain_runner):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session,
                                  "domain": "127.0.0.1", "path": "/"}])
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}experiments/new/")
            advice = page.locator("#advice")
            # Asked on load, with nothing to say: no box at all.
            page.wait_for_selector("#advice[data-state=ready]", state="attached",
                                   timeout=WAIT_MS)
            assert advice.is_hidden()

            page.click("[data-preset=mixed_precision]")
            warning = page.locator("#advice [data-technique=mixed_precision]")
            warning.wait_for(timeout=WAIT_MS)
            assert "mixed_float16 on a CPU without float16" in warning.inner_text()
            assert "Advice for the CPU runner celery@plain" in advice.inner_text()

            page.select_option("#id_hardware", "gpu")
            advice.wait_for(state="hidden", timeout=WAIT_MS)
            page.select_option("#id_hardware", "cpu")
            warning.wait_for(timeout=WAIT_MS)

            # A recipe's parameter: bfloat16 has its own rule and message.
            page.select_option("#recipe-list .step[data-technique=mixed_precision] select",
                               "mixed_bfloat16")
            page.wait_for_selector("#advice :text('mixed_bfloat16 on a CPU')", timeout=WAIT_MS)

            page.click("[data-preset=xla]")
            xla = page.locator("#advice [data-technique=xla]")
            xla.wait_for(timeout=WAIT_MS)
            assert "parameters) on a CPU" in xla.inner_text()
            # The model: a wide MLP is no longer tiny.
            page.fill("#id_mlp_units", "2048")
            xla.wait_for(state="detached", timeout=WAIT_MS)
            assert warning.is_visible()

            # Removing the recipe leaves nothing to say: the box goes.
            page.click("#recipe-list .recipe[data-recipe='0'] .recipe-head button")
            advice.wait_for(state="hidden", timeout=WAIT_MS)
            assert errors == []
        finally:
            browser.close()
