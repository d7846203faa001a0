"""Every page at a phone's width (390x844) and a laptop's (1400x900), in Chromium against
uvicorn: nothing scrolls sideways, whatever the names, and the nav stays readable.

The team's experiment has finished runs, a benchmark, curves, a failure, comments and a
sign-off (written through the ORM, as tests/results.py does, with no training), and every
name a user chooses (team, experiment, recipe, run, dataset, model, comment) has 120
characters without a space: the longest word a page has to break.
"""

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from livestack import ROOT, web_stack
from results import benchmark_results, finish_recipe

from experiments import services
from experiments.models import (
    Comment,
    Dataset,
    Experiment,
    Recipe,
    Run,
    SignOff,
    UploadedModel,
    Worker,
)
from experiments.spec import validate_spec

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(180)]

ARTIFACTS = ROOT / "test-artifacts" / "responsive"
CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1400, "height": 900}}


def long_name(stem):
    """120 characters without a space, as a pasted path or run id would be."""
    return (stem + "_" + "resnet50-mixed_float16-xla-int8-cifar10-" * 4)[:120]


# Elements drawn past the viewport's right edge that no scrolling box of the page holds:
# what makes a page scroll sideways, named so a failure says where to look.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const held = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX !== 'visible' && up.getBoundingClientRect().right <= width + 0.5) {
        return true;
      }
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    [...el.classList].map((c) => '.' + c).join('');
  const past = (el) => el.getBoundingClientRect().right > width + 0.5;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    // The outermost element past the edge: its children only follow it.
    if (el.getBoundingClientRect().width && past(el) && !past(el.parentElement) &&
        !held(el)) {
      wide.push(`${name(el)} (right edge ${Math.round(el.getBoundingClientRect().right)})`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width,
          wide: wide.slice(0, 8)};
}"""

# Each nav link: inside the box that paints the background behind it, and its text in
# contrast with that background (WCAG's ratio).
NAV = """() => {
  const rgb = (color) => color.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = [r, g, b].map((c) => {
      c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  };
  return [...document.querySelectorAll('header nav a')].map((link) => {
    let painter = link;
    while (painter && (rgb(getComputedStyle(painter).backgroundColor)[3] ?? 1) === 0) {
      painter = painter.parentElement;
    }
    painter = painter || document.documentElement;
    const box = link.getBoundingClientRect(), behind = painter.getBoundingClientRect();
    const [fg, bg] = [luminance(rgb(getComputedStyle(link).color)),
                      luminance(rgb(getComputedStyle(painter).backgroundColor))];
    return {
      text: link.textContent.trim(),
      visible: box.width > 0 && box.height > 0 && box.left >= 0 &&
               box.right <= window.innerWidth,
      inside: box.left >= behind.left && box.right <= behind.right &&
              box.top >= behind.top && box.bottom <= behind.bottom,
      contrast: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05),
    };
  });
}"""


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("responsive")) as stack:
        yield stack


def epoch(number):
    return {"event": "epoch", "epoch": number, "loss": 1.0 / number,
            "accuracy": 0.6 + number / 20, "val_loss": 1.1 / number,
            "val_accuracy": 0.55 + number / 20, "seconds": 1.0 + number / 10}


def telemetry(second):
    return {"event": "telemetry", "t": float(second), "cpu_percent": 80.0 + second,
            "rss_mb": 900.0 + second, "gpu_util": None, "gpu_mem_mb": None}


@pytest.fixture
def team_pages(alice, alice_team, tiny_spec):
    """The URLs of every page, for a team whose names are all long words."""
    alice.is_staff = alice.is_superuser = True
    alice.save()
    alice_team.name = long_name("team")[:100]
    alice_team.save()
    recipe_name = long_name("recipe")
    spec = validate_spec(tiny_spec(
        name=long_name("experiment"), training={"epochs": 5, "batch_size": 64, "repeats": 2},
        recipes=[{"name": recipe_name, "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
                 {"name": "XLA", "steps": [{"technique": "xla"}]}]), team=alice_team)
    # Through the ORM, not the service: its on-commit enqueue would reach a real broker.
    experiment = Experiment.objects.create(
        team=alice_team, name=spec["name"], spec=spec, hardware=spec["hardware"],
        accuracy_budget=spec["accuracy_budget"], created_by=alice)
    recipes = [{"name": "baseline", "steps": []}, *spec["recipes"]]
    for replicate in range(2):
        for position, recipe in enumerate(recipes):
            run = Run.objects.create(experiment=experiment, name=recipe["name"],
                                     position=position, replicate=replicate,
                                     steps=recipe["steps"], worker=long_name("worker@host"))
            services.run_record_events(run, [epoch(n) for n in range(1, 6)] +
                                       [telemetry(s) for s in range(10)])
    runs = {run.name: run for run in experiment.runs.filter(replicate=0)}
    finish_recipe(runs["baseline"], latency=2.0)
    long_run = finish_recipe(runs[recipe_name], latency=1.0, accuracy=0.948,
                             runtime="tflite", notes=[long_name("note")])
    Run.objects.filter(experiment=experiment, name="XLA").update(
        status=Run.Status.FAILED, error=long_name("error"),
        stderr_tail=long_name("Traceback") * 3)
    benchmark_results(experiment)
    services.experiment_evidence_refresh(experiment)
    Comment.objects.create(experiment=experiment, author=alice,
                           body=f"**{long_name('comment')}** `{long_name('code')}`")
    Comment.objects.create(experiment=experiment, run=long_run, author=alice,
                           body=long_name("run-comment"))
    SignOff.objects.create(experiment=experiment, run=long_run, approved_by=alice,
                           model_label=long_name("model-label"), note=long_name("note"),
                           evidence={"inference_speedup": 2.0, "budget": 0.01})

    running = Experiment.objects.create(
        team=alice_team, name=long_name("running"), spec=spec, hardware="cpu",
        accuracy_budget=0.01, created_by=alice)
    live = Run.objects.create(experiment=running, name=recipe_name, position=0,
                              status=Run.Status.RUNNING, worker=long_name("worker@host"))
    services.run_record_events(live, [epoch(1), epoch(2)])

    Recipe.objects.create(team=alice_team, name=long_name("library-recipe"),
                          description=long_name("description"),
                          steps=[{"technique": "xla"}], created_by=alice)
    Dataset.objects.create(team=alice_team, name=long_name("dataset"),
                           file="datasets/long.npz", input_shape=[8, 8, 1], num_classes=3,
                           train_samples=90, test_samples=30, size_bytes=1234)
    UploadedModel.objects.create(team=alice_team, name=long_name("model"),
                                 file="models/long.keras", input_shape=[8, 8, 1],
                                 num_classes=3, params=1234, layers=3, size_bytes=5678)
    Worker.objects.create(name=long_name("celery@host"), host=long_name("host"),
                          queues=["cpu", "gpu"], heartbeat_at=timezone.now(),
                          devices={"cpu_model": long_name("cpu"), "logical_cores": 2,
                                   "gpus": []},
                          versions={"tensorflow": "2.21.0", "keras": "3.15.0"})
    succeeded = experiment.runs.filter(status=Run.Status.SUCCEEDED).values_list("pk", flat=True)
    return {
        "home": "",
        "experiments": "experiments/",
        "experiments, searched": "experiments/?q=resnet&sort=fastest",
        "new experiment": "experiments/new/",
        "experiment": f"experiments/{experiment.pk}/",
        "run": f"runs/{long_run.pk}/",
        "failed run": f"runs/{runs['XLA'].pk}/",
        "compare": "compare/?" + "&".join(f"runs={pk}" for pk in succeeded),
        "report": f"experiments/{experiment.pk}/report/",
        "recipes": "recipes/",
        "models": "models/",
        "datasets": "datasets/",
        "runners": "runners/",
        "teams": "teams/",
        "not found": "no-such-page/",
        "API": "api/experiments/",
        "admin": "admin/",
        "admin list": "admin/experiments/experiment/",
    }


def session_of(user):
    # Before Playwright starts: its loop in this thread would refuse the ORM.
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_every_page_fits_a_phone_and_a_laptop_without_scrolling_sideways(
        server, alice, team_pages):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    failures, nav = [], {}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for device, viewport in VIEWPORTS.items():
                anonymous = browser.new_context(viewport=viewport)
                context = browser.new_context(viewport=viewport)
                context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session,
                                      "domain": "127.0.0.1", "path": "/"}])
                pages = [("login", anonymous, "login/")] + [
                    (name, context, path) for name, path in team_pages.items()]
                for name, owner, path in pages:
                    page = owner.new_page()
                    errors = []
                    page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                    response = page.goto(server.url + path, wait_until="load")
                    assert response.status == (404 if name == "not found" else 200), \
                        (name, response.status)
                    if name == "new experiment":
                        # The recipe builder with a recipe in it, as a user fills it in.
                        page.locator("[data-preset]").first.click()
                        page.locator("#recipe-list .recipe").first.wait_for()
                    if page.locator("canvas").count():
                        # Charts size themselves after load: measure what they settle on.
                        page.wait_for_function(
                            "() => !window.Chart || [...document.querySelectorAll('canvas')]"
                            ".every((c) => !Chart.getChart(c) || c.width > 0)")
                    fit = page.evaluate(OVERFLOW)
                    if fit["scrollWidth"] > fit["innerWidth"] or fit["wide"] or errors:
                        failures.append(f"{device} {name} (/{path}): scrollWidth "
                                        f"{fit['scrollWidth']} > {fit['innerWidth']}; "
                                        f"{fit['wide']} {errors}")
                        page.screenshot(path=ARTIFACTS / f"{device}-{name}.png",
                                        full_page=True)
                    if device == "phone" and name == "home":
                        nav = page.evaluate(NAV)
                    page.close()
                anonymous.close()
                context.close()
        finally:
            browser.close()

    assert failures == [], "\n".join(failures)
    # The nav at a phone's width: every link on screen, on the header's dark background.
    assert [link["text"] for link in nav][:2] == ["Experiments", "New experiment"]
    unreadable = [link for link in nav
                  if not (link["visible"] and link["inside"] and link["contrast"] >= 4.5)]
    assert unreadable == []
