"""The deployment files stay in step with the project: docker/ (compose files, Dockerfiles,
entrypoint, healthcheck), .dockerignore and scripts/gpu_check.sh.

No Docker engine is needed. The compose files are read with PyYAML (skipped without it);
`docker compose config` (or the older `docker-compose config`) runs where that CLI exists.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
GPU_HOST_COMPOSE = DOCKER / "compose.gpu-host.yaml"
# The web command of README's "Production mode" and of tests/test_fullstack.py.
SERVER = ["uvicorn", "accelweb.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
APP_SERVICES = ("migrate", "web", "worker-cpu", "worker-gpu")
MEDIA = "/data/media"
DUMMY_ENV = {"SECRET_KEY": "test-secret", "POSTGRES_PASSWORD": "test-db-password",
             "REDIS_PASSWORD": "test-redis-password"}
GPU_HOST_ENV = {"RUNNER_HOSTNAME": "gpu1", "SECRET_KEY": "test-secret",
                "DATABASE_URL": "postgres://accelweb:pw@central:5432/accelweb",
                "REDIS_URL": "redis://:pw@central:6379/0", "ACCELWEB_MEDIA_DIR": "/mnt/media"}
PYYAML_PIN = "pyyaml==6.0.3"


def load_yaml(path):
    yaml = pytest.importorskip(
        "yaml", reason=f"PyYAML is not installed (add {PYYAML_PIN} to the test extras)")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def declared_queues():
    from accelweb.celery import app

    return {queue.name for queue in app.conf.task_queues}


def dockerfile_cmd(name):
    """The exec-form CMD of docker/<name> as a list."""
    lines = [line for line in (DOCKER / name).read_text().splitlines()
             if line.startswith("CMD ")]
    assert len(lines) == 1, f"{name} has {len(lines)} CMD lines"
    return json.loads(lines[0][len("CMD "):])


def worker_queues(command):
    assert command[:4] == ["celery", "-A", "accelweb", "worker"], command
    assert "-Q" in command, f"a runner names its queues: {command}"
    return set(command[command.index("-Q") + 1].split(","))


# --- compose.yaml ---------------------------------------------------------------------

def test_compose_has_the_topology_of_the_design(services):
    assert set(services) == {"postgres", "redis", "migrate", "web", "proxy", "worker-cpu",
                             "worker-gpu"}
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["postgres"]
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])


def test_web_serves_the_asgi_app_the_readme_and_tests_serve(services):
    assert services["web"]["command"][:len(SERVER)] == SERVER
    assert dockerfile_cmd("Dockerfile.web") == SERVER
    readme = (ROOT / "README.md").read_text()
    assert " ".join(SERVER) in readme
    assert "accelweb.asgi:application" in (ROOT / "tests" / "livestack.py").read_text()


def test_workers_use_the_celery_app_and_declared_queues(services):
    queues = declared_queues()
    cpu = services["worker-cpu"]["command"]
    gpu = services["worker-gpu"]["command"]
    assert worker_queues(cpu) == {"cpu"} and worker_queues(cpu) <= queues
    assert worker_queues(gpu) == {"gpu"} and worker_queues(gpu) <= queues
    assert cpu[cpu.index("--concurrency") + 1] == "1"
    assert "--concurrency" not in gpu, "the GPU image's entrypoint sets it from the GPU count"
    assert cpu == dockerfile_cmd("Dockerfile.worker-cpu")
    assert gpu == dockerfile_cmd("Dockerfile.worker-gpu")
    assert cpu[cpu.index("-n") + 1] == "cpu@%h" and gpu[gpu.index("-n") + 1] == "gpu@%h"


def test_services_that_use_the_database_have_database_and_redis_urls(services):
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in \
            env["DATABASE_URL"], name
        assert env["REDIS_URL"].startswith("redis://") and "@redis:6379/" in env["REDIS_URL"]
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY must be required"
        assert str(env["DEBUG"]) == "0"
        assert env["ACCELWEB_MEDIA_ROOT"] == MEDIA
        assert "postgres" in services[name]["depends_on"] or \
            "migrate" in services[name]["depends_on"], name


def test_migrations_run_once_before_web_and_workers(services):
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker-cpu", "worker-gpu"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_gpu_worker_reserves_nvidia_gpus_behind_a_profile(services):
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    # Everything else starts with a plain `docker compose up` on a machine without GPUs.
    assert [n for n, s in services.items() if "profiles" in s] == ["worker-gpu"]
    assert [n for n, s in services.items() if "deploy" in s] == ["worker-gpu"]


def test_web_and_workers_share_the_media_volume(compose, services):
    for name in ("web", "worker-cpu", "worker-gpu"):
        assert f"media:{MEDIA}" in services[name]["volumes"], name
    assert "media" in compose["volumes"]


def test_images_are_built_from_the_docker_folder(services):
    for name, dockerfile in [("migrate", "Dockerfile.web"), ("web", "Dockerfile.web"),
                             ("worker-cpu", "Dockerfile.worker-cpu"),
                             ("worker-gpu", "Dockerfile.worker-gpu")]:
        build = services[name]["build"]
        assert (build["context"], build["dockerfile"]) == ("..", f"docker/{dockerfile}")
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
    assert services["migrate"]["image"] == services["web"]["image"]


def test_gpu_host_compose_runs_the_same_gpu_worker(services):
    remote = load_yaml(GPU_HOST_COMPOSE)["services"]
    assert list(remote) == ["worker-gpu"]
    worker = remote["worker-gpu"]
    assert worker["command"] == services["worker-gpu"]["command"]
    assert worker["image"] == services["worker-gpu"]["image"]
    assert worker["build"] == services["worker-gpu"]["build"]
    assert worker["deploy"] == services["worker-gpu"]["deploy"]
    env = worker["environment"]
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        assert env[name].startswith(f"${{{name}:?"), f"{name} must be required"
    assert env["ACCELWEB_MEDIA_ROOT"] == MEDIA
    assert worker["volumes"][0].endswith(f":{MEDIA}")


# --- docker compose config (where the CLI exists) ---------------------------------------

def compose_cli():
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=60).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    return None


@pytest.fixture(scope="module")
def compose_cmd(tmp_path_factory):
    cmd = compose_cli()
    if cmd is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here")
    # An empty --env-file: a developer's docker/.env must not fill in what a test leaves out.
    empty = tmp_path_factory.mktemp("compose") / "empty.env"
    empty.write_text("")
    return [*cmd, "--env-file", str(empty)]


def config(cmd, path, env, *extra):
    clean = {k: v for k, v in os.environ.items()
             if k not in DUMMY_ENV and k not in GPU_HOST_ENV}
    return subprocess.run([*cmd, "-f", str(path), *extra, "config"],
                          cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]], ids=["default", "gpu"])
def test_docker_compose_config_accepts_the_file(compose_cmd, profile):
    done = config(compose_cmd, COMPOSE, DUMMY_ENV, *profile)
    assert done.returncode == 0, done.stderr
    assert "accelweb.asgi:application" in done.stdout
    assert "redis://:test-redis-password@redis:6379/0" in done.stdout


def test_docker_compose_config_requires_the_secrets(compose_cmd):
    for missing in DUMMY_ENV:
        env = {k: v for k, v in DUMMY_ENV.items() if k != missing}
        done = config(compose_cmd, COMPOSE, env)
        assert done.returncode != 0 and missing in done.stderr, missing


def test_docker_compose_config_accepts_the_gpu_host_file(compose_cmd):
    done = config(compose_cmd, GPU_HOST_COMPOSE, GPU_HOST_ENV)
    assert done.returncode == 0, done.stderr
    assert "/mnt/media" in done.stdout


# --- Dockerfiles, entrypoint, healthcheck, requirements ---------------------------------

@pytest.mark.parametrize("name", ["Dockerfile.web", "Dockerfile.worker-cpu",
                                  "Dockerfile.worker-gpu"])
def test_dockerfiles_run_as_a_non_root_user(name):
    text = (DOCKER / name).read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "ACCELWEB_MEDIA_ROOT=/data/media" in text


def test_web_image_collects_static_and_checks_healthz():
    from django.urls import reverse

    text = (DOCKER / "Dockerfile.web").read_text()
    assert "collectstatic --noinput" in text and "SECRET_KEY=" in text
    assert 'HEALTHCHECK' in text and "docker/healthcheck.py" in text
    assert "python:3.11-slim" in text
    health = (DOCKER / "healthcheck.py").read_text()
    assert f'URL = "http://127.0.0.1:8000{reverse("healthz")}"' in health


def test_gpu_image_has_tensorflow_with_cuda():
    text = (DOCKER / "Dockerfile.worker-gpu").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:12\.", text, re.M)
    assert 'ARG TENSORFLOW="tensorflow[and-cuda]==2.21.0"' in text
    assert 'ENTRYPOINT ["worker-gpu-entrypoint"]' in text


def test_healthcheck_sends_an_allowed_host():
    spec = importlib.util.spec_from_file_location("docker_healthcheck", DOCKER / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.probe_host("accelweb.example.com,localhost") == "accelweb.example.com"
    assert module.probe_host(" .example.com ") == "example.com"
    assert module.probe_host("*") == "localhost"
    assert module.probe_host("") == "localhost"


def test_requirements_follow_pyproject():
    import tomllib

    script = DOCKER / "requirements.py"
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    def requirements(*args):
        done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return done.stdout.splitlines()

    assert requirements() == pinned
    without = requirements("--tensorflow", "none")
    assert not [r for r in without if r.startswith("tensorflow")]
    assert len(without) == len(pinned) - 2
    gpu = requirements("--tensorflow", "tensorflow[and-cuda]==2.21.0")
    assert gpu == [*without, "tensorflow[and-cuda]==2.21.0"]
    assert "keras==3.15.1" in gpu


def test_gpu_image_pins_the_tensorflow_release_of_pyproject():
    pinned = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'"tensorflow-cpu==([\d.]+)', pinned).group(1)
    assert f"tensorflow[and-cuda]=={version}" in (DOCKER / "Dockerfile.worker-gpu").read_text()


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH with a fake `celery` that prints its arguments and an `nvidia-smi` whose GPU
    list comes from $FAKE_GPUS."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "celery").write_text('#!/bin/sh\necho "celery $*"\n')
    (bin_dir / "nvidia-smi").write_text(
        '#!/bin/sh\ni=0\nwhile [ "$i" -lt "${FAKE_GPUS:-0}" ]; do\n'
        '  echo "GPU $i: NVIDIA H100 80GB HBM3 (UUID: GPU-$i)"; i=$((i+1))\ndone\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def entrypoint(fake_bin, args, **env):
    clean = {k: v for k, v in os.environ.items() if k != "ACCELWEB_GPU_CONCURRENCY"}
    return subprocess.run(["sh", str(DOCKER / "worker-gpu-entrypoint.sh"), *args],
                          env={**clean, "PATH": f"{fake_bin}:/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)


def test_gpu_entrypoint_runs_one_pool_process_per_gpu(fake_bin):
    command = dockerfile_cmd("Dockerfile.worker-gpu")
    done = entrypoint(fake_bin, command, FAKE_GPUS="4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [*command, "--concurrency", "4"]
    assert "lists 4 GPU(s)" in done.stderr


def test_gpu_entrypoint_concurrency_override_and_explicit_option(fake_bin):
    base = ["celery", "-A", "accelweb", "worker", "-Q", "gpu"]
    done = entrypoint(fake_bin, base, FAKE_GPUS="4", ACCELWEB_GPU_CONCURRENCY="2")
    assert done.stdout.split()[-2:] == ["--concurrency", "2"]
    for given in (["--concurrency", "3"], ["--concurrency=3"], ["-c", "3"]):
        done = entrypoint(fake_bin, [*base, *given], FAKE_GPUS="4")
        assert done.stdout.split() == [*base, *given], given
    done = entrypoint(fake_bin, ["celery", "-A", "accelweb", "inspect", "ping"], FAKE_GPUS="0")
    assert done.returncode == 0 and "--concurrency" not in done.stdout
    done = entrypoint(fake_bin, ["echo", "hello"], FAKE_GPUS="0")
    assert done.stdout.strip() == "hello"


def test_gpu_entrypoint_refuses_to_start_without_a_gpu(fake_bin):
    base = ["celery", "-A", "accelweb", "worker", "-Q", "gpu"]
    for env in ({"FAKE_GPUS": "0"}, {"FAKE_GPUS": "2", "ACCELWEB_GPU_CONCURRENCY": "two"}):
        done = entrypoint(fake_bin, base, **env)
        assert done.returncode == 1 and done.stdout == "", env
        assert "no GPU to serve" in done.stderr


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", "docker/.env", ".whl", ".site"} <= patterns
    needed = {"accelweb", "experiments", "runners", "templates", "static", "docker",
              "manage.py", "pyproject.toml", "README.md"}
    assert not needed & patterns
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


# --- scripts/gpu_check.sh -------------------------------------------------------------

@pytest.mark.timeout(300)
def test_gpu_check_script_runs_on_the_cpu(tmp_path):
    """A tiny run on Keras' JAX backend: the table comes out, and a TensorFlow-only recipe
    is reported, not fatal (under JAX it needs the TensorFlow backend)."""
    pytest.importorskip("jax")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "KERAS_BACKEND": "jax", "OUT": str(out),
           "GPU_CHECK_HARDWARE": "cpu", "GPU_CHECK_RECIPES": "baseline,ptq_int8",
           "GPU_CHECK_BATCHES": "64", "GPU_CHECK_EPOCHS": "1", "GPU_CHECK_SAMPLES": "100",
           "GPU_CHECK_TRIALS": "1", "GPU_CHECK_LATENCY_SAMPLES": "3", "GPU_CHECK_WARMUP": "1",
           "GPU_CHECK_WHEELS": "none"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== nvidia-smi -L" in done.stdout
    report = (out / "gpu_check.md").read_text()
    assert report in done.stdout
    assert "| recipe | batch | train samples/s |" in report
    assert re.search(r"^\| baseline \| 64 \| [\d,]+ \| 1\.00x \|", report, re.M), report
    assert re.search(r"^\| ptq_int8 \| 64 \|.*\| needs TensorFlow", report, re.M), report
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["fingerprint"]["backend"] == "jax"
    assert [r["status"] for r in result["runs"]] == ["ok", "needs TensorFlow"]
    assert (out / "events" / "baseline_b64.jsonl").read_text().count('"event": "epoch"') == 1


def test_only_the_proxy_is_published_and_its_body_limits_are_the_apps(services):
    from django.conf import settings

    assert "ports" not in services["web"]
    assert services["proxy"]["ports"][0].endswith(":8080")
    conf = (DOCKER / "nginx.conf").read_text()
    sizes = [int(size) for size in re.findall(r"client_max_body_size (\d+)m;", conf)]
    mib = 1024 * 1024
    # nginx refuses first; the app (accelweb.bodylimit) must not refuse below it, nor allow
    # more than it.
    assert sizes == [settings.ACCELWEB_MAX_BODY_BYTES // mib,
                     (settings.ACCELWEB_MAX_BODY_BYTES + settings.ACCELWEB_MAX_UPLOAD_BYTES) // mib]
    assert "proxy_request_buffering off" in conf and "server web:8000" in conf
