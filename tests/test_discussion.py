"""Comments (viewers may comment) and sign-offs (members, with evidence) on the experiment
and run pages, and the Markdown sanitizer behind comments."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils.safestring import SafeString
from results import FINGERPRINT, SPREAD, benchmark_results, finish_recipe, result

from experiments import services
from experiments.markup import render_markdown
from experiments.models import Comment, Run, SignOff, WithdrawnSignOff


def finish(run, **kwargs):
    """Every replicate of the run's recipe succeeded with this result, and the experiment's
    models benchmarked side by side."""
    run = finish_recipe(run, **kwargs)
    benchmark_results(run.experiment)
    return run


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    # Three replicates: a training speedup has an interval only from two up.
    experiment = make_experiment(team=alice_team, user=alice, training=REPEATED, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ])
    finish(experiment.runs.get(name="baseline", replicate=0))
    return experiment


REPEATED = {"epochs": 1, "batch_size": 64, "repeats": 3}


def xla(experiment):
    return experiment.runs.get(name="XLA", replicate=0)


def sign_off(client, user, run, note=""):
    client.force_login(user)
    return client.post(reverse("run_signoff", args=[run.pk]), {"note": note})


def flashed(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# Markdown


def test_it_renders_markdown():
    html = render_markdown("# Result\n\nXLA is **1.4x** faster:\n\n- `jit_compile`\n- fewer ops")

    assert isinstance(html, SafeString)
    assert "<h3>Result</h3>" in html  # a comment's headings sit under the page's own
    assert "<strong>1.4x</strong>" in html
    assert "<li><code>jit_compile</code></li>" in html


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>hello",
    "<img src=x onerror=alert(1)>hello",
    '<div onclick="alert(1)">hello</div><style>body{display:none}</style>',
    '<iframe src="https://evil.example"></iframe>hello',
    '<a href="https://ok.example" onmouseover="alert(1)" target="_blank">hello</a>',
])
def test_it_drops_raw_html(text):
    html = render_markdown(text)

    assert "hello" in html
    for banned in ("<script", "alert(1)", "<img", "onerror", "onclick", "<style", "<iframe",
                   "<div", "onmouseover", "target="):
        assert banned not in html, (text, html)


@pytest.mark.parametrize("link", [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)", "/admin/", "//evil.example/",
])
def test_it_keeps_no_link_but_http_https_and_mailto(link):
    html = render_markdown(f"[click]({link}) <a href='{link}'>raw</a>")

    assert "href" not in html, html
    assert "click" in html


def test_it_keeps_web_and_mail_links_with_nofollow():
    html = render_markdown("[docs](https://keras.io/) [mail](mailto:ml@example.org)")

    assert '<a href="https://keras.io/" rel="nofollow noopener">docs</a>' in html
    assert '<a href="mailto:ml@example.org" rel="nofollow noopener">mail</a>' in html


def test_it_escapes_html_inside_code():
    html = render_markdown("```\n<script>alert(1)</script>\n```")

    assert "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html


# Comments


def test_it_sends_anonymous_visitors_to_log_in(client, alice, experiment):
    comment = Comment.objects.create(experiment=experiment, author=alice, body="hi")
    signoff = SignOff.objects.create(experiment=experiment, run=xla(experiment),
                                     approved_by=alice, model_label="m", evidence={})
    for url in (reverse("comment_add", args=[experiment.pk]),
                reverse("comment_delete", args=[comment.pk]),
                reverse("run_signoff", args=[xla(experiment).pk]),
                reverse("signoff_revoke", args=[signoff.pk])):
        response = client.post(url, {"body": "anonymous"})
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url

    assert Comment.objects.count() == 1
    assert SignOff.objects.count() == 1


def test_it_lets_a_viewer_comment(client, bob, experiment, monkeypatch,
                                  django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(services, "broadcast",
                        lambda group, kind, payload: sent.append((group, kind, payload)))
    client.force_login(bob)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("comment_add", args=[experiment.pk]),
                               {"body": "Is **XLA** worth it?", "run": ""})

    assert response.status_code == 302
    assert response.url == reverse("experiment_detail", args=[experiment.pk]) + "#discussion"
    comment = Comment.objects.get()
    assert (comment.author, comment.experiment, comment.run) == (bob, experiment, None)
    assert sent == [(experiment.group_name, services.DISCUSSION_CHANGED,
                     {"type": "comment", "action": "added", "comment": comment.pk,
                      "run": None})]
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert "Is <strong>XLA</strong> worth it?" in page


def test_it_comments_on_a_run_from_its_page(client, bob, experiment):
    run = xla(experiment)
    client.force_login(bob)

    response = client.post(reverse("comment_add", args=[experiment.pk]),
                           {"body": "Compile time?", "run": run.pk, "return_to": "run"})

    assert response.status_code == 302
    assert response.url == reverse("run_detail", args=[run.pk]) + "#comments"
    assert Comment.objects.get().run == run
    Comment.objects.create(experiment=experiment, author=bob, body="About the experiment")
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert "Compile time?" in page
    assert "About the experiment" not in page


def test_it_draws_the_comments_with_the_results_and_the_form_apart(client, alice, bob,
                                                                   experiment):
    # The page re-fetches the results when a comment event arrives; the form stays
    # outside them, so a comment being typed survives the redraw.
    client.force_login(alice)
    services.comment_add(experiment=experiment, run=xla(experiment), user=bob,
                         body="Seen **live**.")

    results = client.get(reverse("experiment_results", args=[experiment.pk])).content.decode()
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    assert "Seen <strong>live</strong>." in results
    assert 'class="comment-form"' not in results
    assert 'name="body"' not in results
    assert page.count('class="comment-form"') == 1


def test_it_shows_a_hostile_comment_harmlessly(client, alice, experiment):
    Comment.objects.create(experiment=experiment, author=alice,
                           body="<img src=x onerror=alert(1)> [x](javascript:alert(2))")
    client.force_login(alice)

    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    assert "onerror" not in page
    assert "javascript:alert(2)" not in page


@pytest.mark.parametrize("body, message", [
    ("", "The comment is empty."),
    ("   \n ", "The comment is empty."),
    ("x" * 10_001, "The comment is too long: the limit is 10,000 characters."),
    ("a NUL\x00byte", "Null characters are not allowed."),
])
def test_it_answers_a_bad_comment_with_the_page_and_the_error(client, bob, experiment,
                                                              body, message):
    client.force_login(bob)

    response = client.post(reverse("comment_add", args=[experiment.pk]), {"body": body})

    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'id="discussion"' in page
    assert Comment.objects.count() == 0


def test_it_refuses_a_run_of_another_experiment(client, alice, alice_team, experiment,
                                                make_experiment):
    other = make_experiment(team=alice_team, user=alice).runs.get()
    client.force_login(alice)

    response = client.post(reverse("comment_add", args=[experiment.pk]),
                           {"body": "misplaced", "run": other.pk})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert Comment.objects.count() == 0


def test_it_keeps_the_maximum_length(client, bob, experiment):
    client.force_login(bob)

    response = client.post(reverse("comment_add", args=[experiment.pk]), {"body": "y" * 10_000})

    assert response.status_code == 302
    assert len(Comment.objects.get().body) == 10_000


def test_it_refuses_get(client, bob, experiment):
    client.force_login(bob)

    assert client.get(reverse("comment_add", args=[experiment.pk])).status_code == 405


def test_it_lets_an_author_delete_their_comment(client, bob, experiment):
    comment = Comment.objects.create(experiment=experiment, author=bob, body="typo")
    client.force_login(bob)

    response = client.post(reverse("comment_delete", args=[comment.pk]))

    assert response.status_code == 302
    assert not Comment.objects.exists()


def test_it_lets_an_admin_delete_anyones_comment(client, alice, bob, experiment):
    comment = Comment.objects.create(experiment=experiment, author=bob, body="spam")
    client.force_login(alice)

    assert client.post(reverse("comment_delete", args=[comment.pk])).status_code == 302
    assert not Comment.objects.exists()


def test_it_refuses_to_delete_someone_elses_comment(client, alice, bob, dave, experiment):
    comment = Comment.objects.create(experiment=experiment, author=alice, body="mine")
    for user in (bob, dave):
        client.force_login(user)
        assert client.post(reverse("comment_delete", args=[comment.pk])).status_code == 403
    assert Comment.objects.filter(pk=comment.pk).exists()


def test_it_shows_delete_buttons_only_where_allowed(client, alice, bob, experiment):
    mine = Comment.objects.create(experiment=experiment, author=bob, body="bob's")
    theirs = Comment.objects.create(experiment=experiment, author=alice, body="alice's")
    client.force_login(bob)

    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    assert reverse("comment_delete", args=[mine.pk]) in page
    assert reverse("comment_delete", args=[theirs.pk]) not in page


def test_it_hides_the_discussion_from_another_team(client, alice, charlie, experiment):
    run = finish(xla(experiment), train=1500.0)
    comment = Comment.objects.create(experiment=experiment, author=alice, body="private")
    signoff = services.signoff_create(run=run, user=alice)
    client.force_login(charlie)

    for url, data in ((reverse("comment_add", args=[experiment.pk]), {"body": "hello"}),
                      (reverse("comment_delete", args=[comment.pk]), {}),
                      (reverse("run_signoff", args=[run.pk]), {}),
                      (reverse("signoff_revoke", args=[signoff.pk]), {})):
        assert client.post(url, data).status_code == 404, url

    assert list(Comment.objects.values_list("body", flat=True)) == ["private"]
    assert SignOff.objects.filter(pk=signoff.pk).exists()


def test_it_enforces_csrf(bob, experiment):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)

    refused = client.post(reverse("comment_add", args=[experiment.pk]), {"body": "forged"})
    assert refused.status_code == 403
    assert not Comment.objects.exists()

    page = client.get(reverse("experiment_detail", args=[experiment.pk]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                      page.content.decode()).group(1)
    accepted = client.post(reverse("comment_add", args=[experiment.pk]),
                           {"body": "genuine", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert Comment.objects.get().body == "genuine"


# Sign-offs


def test_it_signs_off_a_faster_run_within_the_budget(client, dave, experiment):
    run = finish(xla(experiment), train=1500.0, accuracy=0.942)

    response = sign_off(client, dave, run, note="  Ship it with XLA.  ")

    assert response.status_code == 302
    assert flashed(response) == ["Signed off “XLA”."]
    signoff = SignOff.objects.get()
    assert (signoff.run, signoff.experiment, signoff.approved_by) == (run, experiment, dave)
    assert signoff.note == "Ship it with XLA."
    assert signoff.model_label == "seed_mlp on digits"
    assert signoff.evidence["accuracy_budget"] == 0.01
    assert signoff.evidence["faster"] == ["training"]
    row = signoff.evidence["row"]
    assert (row["run_id"], row["kind"], row["comparable"]) == (run.pk, "vs baseline", True)
    assert row["train_speedup"] == pytest.approx(1.5, abs=0.01) and row["train_ci"][0] > 1.0
    assert row["replicates"] == 3
    assert row["accuracy_delta"] == -0.008
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert "Signed off</span> by dave" in page
    assert "“Ship it with XLA.”" in page


def test_it_signs_off_on_inference_speed_alone(client, alice, experiment):
    run = finish(xla(experiment), latency=1.0)

    assert sign_off(client, alice, run).status_code == 302

    assert SignOff.objects.get().evidence["faster"] == ["inference"]


def test_it_does_not_count_a_speedup_over_float32_tflite_alone(client, alice, experiment):
    # Same latency as the Keras baseline, but twice as fast as its own float32 TFLite model:
    # shipping it is no faster than the baseline.
    reference = {"latency_ms_p50": 4.0, "latency_samples": [4.0 * f for f in SPREAD],
                 "model_bytes": 160_000, "test_accuracy": 0.95}
    run = finish(experiment.runs.get(name="int8", replicate=0), reference=reference,
                 runtime="tflite")

    response = sign_off(client, alice, run)

    assert response.status_code == 302
    assert not SignOff.objects.exists()
    assert "The inference speedup interval" in flashed(response)[0]


def test_it_keeps_the_float32_tflite_row_with_the_evidence(client, alice, experiment):
    reference = {"latency_ms_p50": 4.0, "latency_samples": [4.0 * f for f in SPREAD],
                 "model_bytes": 160_000, "test_accuracy": 0.95}
    run = finish(experiment.runs.get(name="int8", replicate=0), latency=1.0, reference=reference,
                 runtime="tflite")

    assert sign_off(client, alice, run).status_code == 302

    signoff = SignOff.objects.get()
    assert signoff.evidence["faster"] == ["inference"]
    assert signoff.evidence["row"]["inference_ci"][0] > 1.0
    assert signoff.evidence["reference_row"]["kind"] == "vs float32 TFLite"


def test_it_reads_the_budget_from_the_spec(client, alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice, accuracy_budget=0.03,
                                 training=REPEATED,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    finish(experiment.runs.get(name="baseline", replicate=0))
    run = finish(xla(experiment), train=1500.0, accuracy=0.925)

    assert sign_off(client, alice, run).status_code == 302

    assert SignOff.objects.get().evidence["accuracy_budget"] == 0.03


def test_it_refuses_a_viewer(client, bob, experiment):
    run = finish(xla(experiment), train=1500.0)

    response = sign_off(client, bob, run)

    assert response.status_code == 403
    assert not SignOff.objects.exists()


def refusal(client, user, run):
    response = sign_off(client, user, run)
    assert response.status_code == 302
    assert response.url == reverse("experiment_detail", args=[run.experiment_id]) + "#signoffs"
    assert not SignOff.objects.filter(run=run).exists()
    [message] = flashed(response)
    return message


def test_it_refuses_a_speedup_interval_that_includes_one(client, dave, experiment):
    run = finish(xla(experiment))

    message = refusal(client, dave, run)

    assert message.startswith("“XLA” cannot be signed off. ")
    assert re.search(r"The training speedup interval \[0\.9\d, 1\.0\d\] includes 1\.0: "
                     r"no evidence it is faster\.", message), message
    assert re.search(r"The inference speedup interval \[0\.9\d, 1\.0\d\] includes 1\.0",
                     message), message


def test_it_refuses_a_slower_run(client, dave, experiment):
    run = finish(xla(experiment), train=500.0, latency=4.0)

    message = refusal(client, dave, run)

    assert re.search(r"The training speedup interval \[0\.\d\d, 0\.\d\d\] is below 1\.0: "
                     r"it is slower\.", message), message


def test_it_refuses_every_sign_off_when_the_a_a_control_is_too_noisy(client, dave,
                                                                    experiment):
    run = finish(xla(experiment), train=1500.0, latency=1.0)
    benchmark = experiment.benchmarks.get()
    benchmark.result["pairs"][0].update(inference_speedup=0.9, inference_ci=[0.85, 0.95])
    benchmark.save()

    message = refusal(client, dave, run)

    assert ("The A/A control (the baseline against itself) came out [0.85, 0.95]: the "
            "machine was too noisy while benchmarking. Re-benchmark.") in message
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert 'id="too-noisy"' in page
    # Re-benchmark waits for every run to end (int8 is still queued).
    assert 'id="rebenchmark"' not in page
    Run.objects.filter(experiment=experiment, status="queued").update(status="cancelled")
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert 'id="rebenchmark"' in page


def test_it_refuses_a_quantized_run_slower_than_its_float32_model(client, dave, experiment):
    # Twice as fast as the Keras baseline, but the float32 TFLite model of the same
    # weights answers in half its time: quantization cost speed.
    reference = {"latency_ms_p50": 0.5, "model_bytes": 160_000, "test_accuracy": 0.95}
    run = finish(experiment.runs.get(name="int8", replicate=0), latency=1.0,
                 reference=reference, runtime="tflite")

    message = refusal(client, dave, run)

    assert re.search(r"The float32 model of the same weights is faster than this quantized "
                     r"one \(0\.50x \[0\.4\d, 0\.5\d\]\): quantization costs speed here\.",
                     message), message


def test_it_refuses_a_training_speedup_from_one_run(client, dave, alice, alice_team,
                                                    make_experiment):
    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    finish(experiment.runs.get(name="baseline"))
    run = finish(experiment.runs.get(name="XLA"), train=3000.0)

    message = refusal(client, dave, run)

    assert ("The training speedup comes from one run: there is no interval. Set "
            "training.repeats to 2 or more to measure it.") in message


def test_it_refuses_an_accuracy_drop_beyond_the_budget(client, dave, experiment):
    run = finish(xla(experiment), train=1500.0, accuracy=0.93)

    message = refusal(client, dave, run)

    assert ("Test accuracy changed by −2.0 pts, 95% CI −2.0 to −2.0 pts: a drop of more than "
            "the budget of 1 pt. The rule judges the point estimate, not its interval."
            ) in message
    assert "speedup" not in message


def finish_with_accuracies(run, accuracies, **kwargs):
    """The recipe's replicates succeed faster than the baseline, each with its accuracy."""
    run = finish_recipe(run, train=1500.0, **kwargs)
    for replicate, accuracy in zip(run.experiment.runs.filter(position=run.position)
                                   .order_by("replicate"), accuracies, strict=True):
        replicate.result["test_accuracy"] = accuracy
        replicate.save(update_fields=["result"])
    benchmark_results(run.experiment)
    return run


def test_it_judges_the_accuracy_budget_on_the_point_estimate(client, dave, experiment):
    # Against the baseline's 0.95: -5, +1 and -1 points, a mean of -1.7 points, over the
    # 1-point budget, though the interval (three replicates) straddles 0.
    run = finish_with_accuracies(xla(experiment), [0.90, 0.96, 0.94])

    message = refusal(client, dave, run)

    assert re.search(r"Test accuracy changed by −1\.7 pts, 95% CI −\d+\.\d to \+\d+\.\d pts: "
                     r"a drop of more than the budget of 1 pt\. The rule judges the point "
                     r"estimate, not its interval\.", message), message
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    row = re.search(rf'data-comparison-run="{run.pk}" data-kind="vs baseline">.*?</tr>',
                    page, re.S).group(0)
    assert "−1.7 pts" in row and "no clear difference" in row
    assert "over the 1 pt budget (judged on the point estimate)" in row
    assert ("test accuracy may fall by at most 1 pt against the baseline (the experiment's "
            "budget), judged on the point estimate") in page


def test_it_signs_off_within_the_budget_though_the_interval_reaches_past_it(client, dave,
                                                                            experiment):
    # -2, +1 and +1.5 points: a mean of +0.2 points; the interval's low end is far below
    # -1 point, and the point estimate decides.
    run = finish_with_accuracies(xla(experiment), [0.93, 0.96, 0.965])

    client.force_login(dave)
    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()
    assert ("Eligible.</span> <small class=\"budget-check\">Accuracy Δ +0.2 pts: within the "
            "1 pt budget (judged on the point estimate).</small>") in page
    response = sign_off(client, dave, run)

    assert flashed(response) == ["Signed off “XLA”."]
    row = SignOff.objects.get(run=run).evidence["row"]
    assert row["accuracy_delta"] == pytest.approx(0.0017, abs=1e-4)
    assert row["accuracy_ci"][0] < -0.01


def test_it_refuses_a_run_on_other_hardware(client, dave, experiment):
    run = finish(xla(experiment), train=1500.0,
                 fingerprint={**FINGERPRINT, "cpu_model": "AMD EPYC"})

    message = refusal(client, dave, run)

    assert ("ran on other hardware or software than the baseline: cpu_model differs "
            "(Intel Xeon vs AMD EPYC). Its speedup is not comparable.") in message


@pytest.mark.parametrize("status", [Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.FAILED])
def test_it_refuses_a_run_that_has_not_succeeded(client, dave, experiment, status):
    run = xla(experiment)
    Run.objects.filter(pk=run.pk).update(status=status, result=result(train=1500.0))

    message = refusal(client, dave, run)

    assert f"“XLA” has not succeeded (it is {status.label.lower()})." in message


def test_it_refuses_the_baseline(client, dave, experiment):
    message = refusal(client, dave, experiment.runs.get(name="baseline", replicate=0))

    assert "“baseline” is the baseline the other runs are measured against." in message


def test_it_refuses_without_a_succeeded_baseline(client, dave, experiment):
    Run.objects.filter(experiment=experiment, name="baseline").update(status=Run.Status.FAILED)
    run = finish(xla(experiment), train=1500.0)

    message = refusal(client, dave, run)

    assert "The baseline has not succeeded, so there is nothing to compare with." in message


def test_it_refuses_a_second_sign_off(client, alice, dave, experiment):
    run = finish(xla(experiment), train=1500.0)
    services.signoff_create(run=run, user=alice)

    response = sign_off(client, dave, run)

    assert "was already signed off by alice" in flashed(response)[0]
    assert SignOff.objects.get().approved_by == alice


def test_it_shows_who_may_sign_off_what(client, bob, dave, experiment):
    eligible = finish(xla(experiment), train=1500.0)
    finish(experiment.runs.get(name="int8", replicate=0), accuracy=0.80)
    url = reverse("experiment_detail", args=[experiment.pk])

    client.force_login(dave)
    page = client.get(url).content.decode()
    assert reverse("run_signoff", args=[eligible.pk]) in page
    assert page.count(">Sign off</button>") == 1
    assert "Not eligible.</span> The training speedup interval" in page
    assert "Test accuracy changed by −15.0 pts" in page

    client.force_login(bob)
    page = client.get(url).content.decode()
    assert ">Sign off</button>" not in page
    assert "Viewers can comment; members and admins sign off." in page


def test_it_lets_the_approver_revoke(client, dave, experiment):
    signoff = services.signoff_create(run=finish(xla(experiment), train=1500.0), user=dave)
    client.force_login(dave)

    response = client.post(reverse("signoff_revoke", args=[signoff.pk]))

    assert response.status_code == 302
    assert not SignOff.objects.exists()
    withdrawn = WithdrawnSignOff.objects.get()
    assert (withdrawn.run, withdrawn.approved_by, withdrawn.approved_at) == (
        signoff.run, dave, signoff.created_at)
    assert (withdrawn.withdrawn_by, withdrawn.reason) == (dave, "revoked")
    assert withdrawn.evidence == signoff.evidence


def test_it_drops_a_sign_off_when_its_run_is_run_again(dave, experiment):
    run = finish(xla(experiment), train=1500.0)
    services.signoff_create(run=run, user=dave)

    assert services.run_rerun(run, user=None)

    assert not SignOff.objects.exists()
    withdrawn = WithdrawnSignOff.objects.get()
    assert (withdrawn.run, withdrawn.withdrawn_by) == (run, None)
    assert withdrawn.reason == "the run was run again"


def test_it_drops_every_sign_off_when_the_baseline_is_run_again(dave, experiment):
    services.signoff_create(run=finish(xla(experiment), train=1500.0), user=dave)

    assert services.run_rerun(experiment.runs.get(name="baseline", replicate=0), user=None)

    assert not SignOff.objects.exists()
    assert WithdrawnSignOff.objects.get().reason == "the baseline was run again"


def test_it_lets_an_admin_revoke(client, alice, dave, experiment):
    signoff = services.signoff_create(run=finish(xla(experiment), train=1500.0), user=dave)
    client.force_login(alice)

    assert client.post(reverse("signoff_revoke", args=[signoff.pk])).status_code == 302
    assert not SignOff.objects.exists()
    assert WithdrawnSignOff.objects.get().withdrawn_by == alice

    # The experiment page and the report keep the record, and a new sign-off is possible.
    for name in ("experiment_detail", "experiment_report"):
        page = client.get(reverse(name, args=[experiment.pk])).content.decode()
        assert "Withdrawn sign-offs" in page, name
        assert ("<strong>XLA</strong>: signed off by dave on "
                f"{signoff.created_at:%Y-%m-%d %H:%M}") in page, name
        assert "revoked by alice." in page, name
    assert services.signoff_create(run=xla(experiment), user=alice)


def test_it_refuses_a_revoke_by_others(client, alice, bob, dave, experiment):
    signoff = services.signoff_create(run=finish(xla(experiment), train=1500.0), user=alice)
    for user in (bob, dave):
        client.force_login(user)
        assert client.post(reverse("signoff_revoke", args=[signoff.pk])).status_code == 403
    assert SignOff.objects.exists()


# Queries


def _page_queries(client, url, django_assert_max_num_queries):
    client.get(url)  # the first view after update()s stores the evidence (test_views)
    with django_assert_max_num_queries(20) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_it_draws_the_discussion_in_a_fixed_number_of_queries(
        client, alice, bob, dave, experiment, django_assert_max_num_queries):
    client.force_login(alice)
    url = reverse("experiment_detail", args=[experiment.pk])
    run_url = reverse("run_detail", args=[xla(experiment).pk])
    Comment.objects.create(experiment=experiment, author=bob, body="one")
    few = _page_queries(client, url, django_assert_max_num_queries)
    few_on_run = _page_queries(client, run_url, django_assert_max_num_queries)

    xla_run = finish(xla(experiment), train=1500.0)
    int8 = finish(experiment.runs.get(name="int8", replicate=0), latency=1.0)
    services.signoff_create(run=xla_run, user=dave)
    services.signoff_create(run=int8, user=alice)
    for index, author in enumerate([alice, bob, dave] * 4):
        Comment.objects.create(experiment=experiment, author=author, body=f"**{index}**",
                               run=xla_run if index % 2 else None)
    many = _page_queries(client, url, django_assert_max_num_queries)
    many_on_run = _page_queries(client, run_url, django_assert_max_num_queries)

    assert few == many
    assert few_on_run == many_on_run


def test_it_offers_one_sign_off_per_recipe_not_per_replicate(client, alice, experiment):
    finish(xla(experiment), train=1500.0)
    client.force_login(alice)

    page = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    rows = re.findall(r'id="signoff-run-(\d+)"', page)
    firsts = [str(experiment.runs.get(name=name, replicate=0).pk) for name in ("XLA", "int8")]
    assert rows == firsts
