"""The whole path with real parts: uvicorn serving the ASGI app, a real `celery worker`
process, PostgreSQL and Redis on loopback, and headless Chromium driven by Playwright.

Also `manage.py submit --follow` of a two-recipe spec, against these production
transports and against the embedded default (`manage.py up`: SQLite, no Redis).
"""

import json
import re

import pytest
from livestack import ROOT, Stack, embedded_env, free_port, production_env

# transaction=True: what a test writes is committed, so the server processes see it.
pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "e2e-pass-8731"
TWO_RECIPES = {
    "name": "digits, seed MLP: XLA and int8",
    "model": {"arch": "seed_mlp", "params": {}},
    "dataset": {"name": "digits"},
    "training": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001,
                 "seed": 0},
    "hardware": "cpu",
    "recipes": [
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ],
    "benchmark": {"trials": 3, "latency_samples": 30, "warmup": 5, "executions": 2,
                  "rounds": 3, "calls": 10},
}


@pytest.fixture(scope="module")
def production_stack(django_db_setup, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    stack = Stack(tmp, production_env(tmp))
    stack.manage("collectstatic", "--noinput", "-v0")
    stack.manage("shell", "-c", "from accelweb.celery import app; app.control.purge()")
    try:
        stack.start_worker(f"e2e-{free_port()}")
        stack.start_web()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def alice(transactional_db):
    from django.contrib.auth import get_user_model

    from experiments.models import Membership, Team

    user = get_user_model().objects.create_user("e2e-alice", password=PASSWORD)
    team = Team.objects.create(name="E2E Alice's team")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    return user


def _browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync"],
    )


def test_it_runs_an_experiment_from_the_browser_and_streams_its_curves(production_stack, alice):
    from playwright.sync_api import expect, sync_playwright

    stack = production_stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        try:
            page.goto(stack.url + "experiments/new/")
            assert "/login/" in page.url
            page.fill("#id_username", "e2e-alice")
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_selector("#experiment-form")

            page.fill("#id_name", "synthetic, seed CNN: XLA and int8")
            page.select_option("#id_arch", "seed_cnn")
            page.select_option("#id_dataset", "synthetic")
            page.fill("#id_synthetic_samples", "1500")
            page.fill("#id_epochs", "6")
            page.fill("#id_batch_size", "32")
            page.fill("#id_bench_executions", "3")
            page.fill("#id_bench_rounds", "5")
            page.click("[data-preset=xla]")
            page.click("[data-preset=ptq-dynamic_int8]")
            page.click("#experiment-form button[type=submit]")
            page.wait_for_url("**/experiments/*/")
            assert page.locator("tr[data-run-id]").count() == 3

            # Epoch points arrive over the websocket while a run is still running.
            page.wait_for_function(
                """() => {
                  const aw = window.accelweb;
                  if (!aw) return false;
                  return aw.state.runs.some((run) => run.status === "running" &&
                    aw.charts.loss.data.datasets.some(
                      (d) => d.runId === run.id && d.label.endsWith("(train)") &&
                             d.data.length >= 2));
                }""",
                timeout=240_000,
            )
            page.screenshot(path=str(ARTIFACTS / "fullstack-live.png"), full_page=True)

            page.wait_for_function(
                """() => window.accelweb.state.runs.every((run) =>
                     ["succeeded", "failed", "cancelled"].includes(run.status))""",
                timeout=420_000,
            )
            statuses = page.locator("tr[data-run-id] .run-status").all_inner_texts()
            assert statuses == ["Succeeded"] * 3, (statuses, stack.log_tails())
            # Then the benchmark stage, its progress drawn live, and the speedups from it.
            expect(page.locator("#benchmark-stage")).to_contain_text(
                "benchmarking: execution", timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "fullstack-benchmarking.png"), full_page=True)
            expect(page.locator("#noise-floor")).to_contain_text(
                "Noise floor: baseline vs itself", timeout=300_000)
            labels = page.evaluate("() => window.accelweb.speedupChart.data.labels")
            assert "XLA compilation" in labels and "Noise floor: baseline vs itself" in labels
            assert any("TFLite float32" in label for label in labels)
            # The tables are re-rendered by the server when a run ends: wait for the last.
            expect(page.locator("#results-table tbody tr")).to_have_count(4)  # + reference
            # The A/A control, XLA, int8 against the baseline, its float32 model, the switch.
            expect(page.locator("#comparison-table tbody tr")).to_have_count(5)
            switch = page.locator("#comparison-table tr[data-kind='runtime switch'] .inference")
            assert "×" in switch.inner_text()
            page.screenshot(path=str(ARTIFACTS / "fullstack.png"), full_page=True)

            # A reload rebuilds everything from the database: the runs from the snapshot at
            # once, their curves when the page's fetch of them answers.
            page.reload()
            page.wait_for_function("""() => {
              const datasets = window.accelweb.charts.loss.data.datasets;
              return datasets.length == 6 && datasets.every((d) => d.data.length > 0);
            }""")
            points = page.evaluate(
                "() => window.accelweb.charts.loss.data.datasets.map((d) => d.data.length)"
            )
            assert points == [6] * 6
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "fullstack-failure.png"), full_page=True)
            (ARTIFACTS / "fullstack-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()


def _submit_follow(stack, tmp_path, user):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TWO_RECIPES))
    done = stack.manage("submit", str(spec), "--user", user, "--follow", timeout=420,
                        check=False)
    return done


def test_it_follows_a_cli_submission_on_redis_and_postgresql(production_stack, alice, tmp_path):
    done = _submit_follow(production_stack, tmp_path, "e2e-alice")
    assert done.returncode == 0, done.stdout + done.stderr + production_stack.log_tails()
    assert "All 3 runs succeeded." in done.stdout
    assert "  benchmarking: execution 1 of 2" in done.stdout
    assert "  benchmark succeeded" in done.stdout
    assert re.search(r"Noise floor: baseline vs itself +A/A control", done.stdout)


def test_it_follows_a_cli_submission_on_the_embedded_default(tmp_path):
    stack = Stack(tmp_path, embedded_env(tmp_path / "data", ACCELWEB_DEMO_PASSWORD=PASSWORD))
    try:
        log = stack.start_up()
        assert f"demo / {PASSWORD}" in log.read_text()
        done = _submit_follow(stack, tmp_path, "demo")
        assert done.returncode == 0, done.stdout + done.stderr + stack.log_tails()
        assert "All 3 runs succeeded." in done.stdout
        assert "  benchmark succeeded" in done.stdout
    finally:
        stack.stop()


def _review_spec(name, batch_size):
    return {
        "name": name,
        "model": {"arch": "seed_mlp", "params": {}},
        "dataset": {"name": "digits"},
        "training": {"epochs": 2, "batch_size": batch_size, "seed": 0},
        "hardware": "cpu",
        "accuracy_budget": 0.05,
        "recipes": [{"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]}],
        "benchmark": {"trials": 3, "latency_samples": 30, "warmup": 5, "executions": 3,
                      "rounds": 5, "calls": 10},
    }


def _benchmarked(page, stack):
    """Wait for the page to show the benchmark's speedups; when its A/A control says the
    machine was too noisy, re-benchmark once, as a user would."""
    from playwright.sync_api import expect

    for attempt in range(2):
        expect(page.locator("#noise-floor")).to_be_visible(timeout=300_000)
        if page.locator("#too-noisy").count() == 0:
            return
        assert attempt == 0, "the A/A control was too noisy twice: " + stack.log_tails()
        page.click("#rebenchmark")
        expect(page.locator("#benchmark-stage")).to_contain_text("benchmark", timeout=30_000)
        expect(page.locator("#too-noisy")).to_have_count(0, timeout=300_000)


def test_it_reviews_compares_comments_and_signs_off(production_stack, alice, tmp_path):
    """The review flow on real runs: two experiments submitted from the CLI, then in the
    browser a sign-off of the int8 recipe (dynamic-range PTQ of a Dense model answers
    many times faster than Keras at batch 1), a Markdown comment with hostile HTML, and
    the two int8 runs compared side by side."""
    from playwright.sync_api import expect, sync_playwright

    from experiments.models import Run

    stack = production_stack
    # The second name is hostile: every page and chart label must show it as text.
    names = ["digits MLP, batch 64: int8", "batch 32 <img src=x onerror=alert(1)>"]
    for index, (name, batch) in enumerate(zip(names, (64, 32), strict=True)):
        spec = tmp_path / f"review{index}.json"
        spec.write_text(json.dumps(_review_spec(name, batch)))
        stack.manage("submit", str(spec), "--user", "e2e-alice")
    int8_runs = list(Run.objects.filter(name="int8").order_by("experiment_id"))
    experiment_id = int8_runs[0].experiment_id
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            page.goto(stack.url + "login/")
            page.fill("#id_username", "e2e-alice")
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(stack.url)
            for experiment in {run.experiment_id for run in int8_runs}:
                page.goto(f"{stack.url}experiments/{experiment}/")
                page.wait_for_function(
                    """() => window.accelweb && window.accelweb.state.runs.every((run) =>
                         ["succeeded", "failed", "cancelled"].includes(run.status))""",
                    timeout=420_000,
                )
                statuses = page.locator("tr[data-run-id] .run-status").all_inner_texts()
                assert statuses == ["Succeeded"] * 2, (statuses, stack.log_tails())

            # Sign off the int8 recipe of the first experiment, once it is benchmarked.
            page.goto(f"{stack.url}experiments/{experiment_id}/")
            _benchmarked(page, stack)
            row = page.locator(f"#signoff-run-{int8_runs[0].pk}")
            expect(row).to_contain_text("Eligible.")
            row.locator("input[name=note], textarea[name=note]").fill("Ship the int8 model.")
            row.locator("button", has_text="Sign off").click()
            row = page.locator(f"#signoff-run-{int8_runs[0].pk}")
            expect(row).to_contain_text("Signed off by e2e-alice")
            expect(row).to_contain_text("Ship the int8 model.")

            # A Markdown comment on the run; its raw HTML is dropped, never run.
            page.fill("#id_body", "**Ship int8**: same accuracy, far lower latency. "
                                  "<img src=x onerror=alert(1)>")
            page.select_option("#comment-run", str(int8_runs[0].pk))
            page.click(".comment-form button[type=submit]")
            comment = page.locator(".comment").last
            expect(comment.locator("strong", has_text="Ship int8")).to_be_visible()
            assert comment.locator("img").count() == 0
            page.locator("#discussion").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

            # Compare the two int8 runs across the experiments.
            page.goto(stack.url + "compare/")
            for run in int8_runs:
                page.check(f"#compare-picker input[value='{run.pk}']")
            page.click("#compare-picker button[type=submit]")
            expect(page.locator("#compare-table tbody tr")).to_have_count(2)
            expect(page.locator("#hardware-warning")).to_have_count(0)  # one worker ran both
            page.wait_for_function(
                "() => window.accelweb && window.accelweb.compareChart"
                " && window.accelweb.compareChart.data.datasets.length >= 2")
            expect(page.locator("#compare-table")).to_contain_text(names[1])
            page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
            assert dialogs == []  # no alert(1) ran anywhere
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "review-failure.png"), full_page=True)
            (ARTIFACTS / "review-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()


def test_it_shows_a_comment_from_another_session_live(production_stack, alice, monkeypatch):
    """A comment posted on a run's page by someone else appears on an open experiment page
    over the websocket, without a reload, and a comment being typed there is kept."""
    from django.contrib.auth import get_user_model
    from playwright.sync_api import expect, sync_playwright

    from experiments import services
    from experiments.models import Membership

    stack = production_stack
    team = alice.teams.get()
    bob = get_user_model().objects.create_user("e2e-bob", password=PASSWORD)
    Membership.objects.create(team=team, user=bob, role=Membership.Role.VIEWER)
    # Queued and never run: no run's status change can redraw the results in the
    # comment's place.
    monkeypatch.setattr(services, "run_enqueue", lambda run: None)
    experiment = services.experiment_create(team=team, user=alice, spec={
        "name": "digits, seed MLP: live comments", "model": {"arch": "seed_mlp", "params": {}},
        "dataset": {"name": "digits"}, "training": {"epochs": 1, "batch_size": 64},
        "hardware": "cpu", "recipes": [],
    })
    run = experiment.runs.get()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        watcher, poster = (browser.new_context().new_page() for _ in range(2))
        try:
            for page, username in ((watcher, "e2e-alice"), (poster, "e2e-bob")):
                page.goto(stack.url + "login/")
                page.fill("#id_username", username)
                page.fill("#id_password", PASSWORD)
                page.click("main button[type=submit]")
                page.wait_for_url(stack.url)
            watcher.goto(f"{stack.url}experiments/{experiment.pk}/")
            expect(watcher.locator("#live-state")).to_have_text("live")
            watcher.evaluate("() => { window.notReloaded = true; }")
            watcher.fill("#id_body", "half a thought")

            poster.goto(f"{stack.url}runs/{run.pk}/")
            poster.fill("#id_body", "Seen **live**.")
            poster.click(".comment-form button[type=submit]")
            expect(poster.locator(".comment")).to_contain_text("Seen live.")

            expect(watcher.locator("#discussion .comment")).to_contain_text("Seen live.")
            assert watcher.evaluate("() => window.notReloaded") is True
            expect(watcher.locator("#id_body")).to_have_value("half a thought")
        except Exception:
            watcher.screenshot(path=str(ARTIFACTS / "live-comment-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
