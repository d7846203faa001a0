"""Print the project's runtime dependencies from pyproject.toml, one per line (pip -r).

The images install these in a layer of their own, before the source is copied, so a code
change does not reinstall TensorFlow. ``--tensorflow`` picks the TensorFlow build:

    python requirements.py                                      # as pyproject.toml says
    python requirements.py --tensorflow "tensorflow[and-cuda]==2.21.0"   # the GPU image
    python requirements.py --tensorflow none                    # no TensorFlow at all
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

TENSORFLOW = re.compile(r"^tensorflow(-cpu)?\s*(\[|==|>=|<=|~=|;|$)")


def requirements(pyproject: Path, tensorflow: str = "keep") -> list[str]:
    with pyproject.open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    if tensorflow == "keep":
        return list(dependencies)
    kept = [dep for dep in dependencies if not TENSORFLOW.match(dep.strip())]
    return kept if tensorflow == "none" else [*kept, tensorflow]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path,
                        default=Path("pyproject.toml"))
    parser.add_argument("--tensorflow", default="keep",
                        help='"keep" (default), "none", or a requirement that replaces it')
    args = parser.parse_args(argv)
    print("\n".join(requirements(args.pyproject, args.tensorflow)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
