"""HEALTHCHECK of the web image: GET /healthz on the local uvicorn, exit 0 only on 200.

Django answers 400 to a Host header that ALLOWED_HOSTS lacks, so the probe sends the first
allowed name (``localhost`` when that is ``*`` or unset) rather than 127.0.0.1.
"""

import os
import sys
import urllib.request

URL = "http://127.0.0.1:8000/healthz"


def probe_host(allowed: str) -> str:
    for name in (item.strip() for item in allowed.split(",")):
        if name and name != "*":
            return name.lstrip(".")  # ".example.com" allows example.com and its subdomains
    return "localhost"


def main() -> int:
    host = probe_host(os.environ.get("ALLOWED_HOSTS", "localhost"))
    request = urllib.request.Request(URL, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=8) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError and HTTPError (503: a part does not answer)
        print(f"healthz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
