"""Settings from the environment: production-safe by default, loud about what is missing."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "accelweb.example.com",
    "ACCELWEB_HTTPS": "1",
    "REDIS_URL": "redis://127.0.0.1:6379/9",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/accelweb",
}


def manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**clean, **env})


def test_it_passes_the_deploy_check_with_the_documented_environment(tmp_path):
    done = manage("check", "--deploy", "--fail-level", "WARNING",
                  env={**PRODUCTION, "ACCELWEB_DATA_DIR": str(tmp_path)})

    assert done.returncode == 0, done.stdout + done.stderr


def test_it_warns_about_https_settings_without_tls(tmp_path):
    env = {**PRODUCTION, "ACCELWEB_HTTPS": "0", "ACCELWEB_DATA_DIR": str(tmp_path)}

    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert done.returncode != 0
    assert "SESSION_COOKIE_SECURE" in done.stderr + done.stdout


def test_it_requires_a_secret_key_in_production_mode(tmp_path):
    env = {**PRODUCTION, "ACCELWEB_DATA_DIR": str(tmp_path)}
    del env["SECRET_KEY"]

    done = manage("check", env=env)

    assert done.returncode != 0
    assert "SECRET_KEY must be set in production mode" in done.stderr


def test_it_refuses_a_malformed_boolean(tmp_path):
    done = manage("check", env={"DEBUG": "maybe", "ACCELWEB_DATA_DIR": str(tmp_path)})

    assert done.returncode != 0
    assert "DEBUG must be a boolean" in done.stderr


def test_it_keeps_debug_off_by_default(tmp_path):
    # In a process of its own: the test runner forces DEBUG off in this one.
    done = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)",
                  env={"ACCELWEB_DATA_DIR": str(tmp_path)})

    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr
