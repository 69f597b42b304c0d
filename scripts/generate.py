"""Run the pinned openapi-python-client on openapi.yaml with the project's template overrides.

    python scripts/generate.py OUTPUT_PATH   # writes the package to OUTPUT_PATH (must not exist)

The generator looks up a template in ``--custom-template-path`` first, then in its own package,
so an override named like the template it replaces cannot reach that original. This script runs
the generator on a temporary copy of ``templates/`` that also holds the generator's own templates
under ``upstream/``: an override renders ``upstream/<name>`` and edits only what must change.
Used by ``make generate`` and tests/test_generated_is_fresh.py, so both run the same command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openapi_python_client

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_TEMPLATES = Path(openapi_python_client.__file__).parent / "templates"


def generate(output_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the generator into ``output_path``; its output captured, its exit status returned."""
    with tempfile.TemporaryDirectory() as tmp:
        templates = Path(tmp) / "templates"
        shutil.copytree(ROOT / "templates", templates)
        shutil.copytree(UPSTREAM_TEMPLATES, templates / "upstream")
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "openapi-python-client"),
                "generate",
                *("--path", str(ROOT / "openapi.yaml")),
                *("--config", str(ROOT / "generator-config.yml")),
                *("--meta", "none"),
                "--fail-on-warning",
                *("--custom-template-path", str(templates)),
                *("--output-path", str(output_path)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    result = generate(Path(sys.argv[1]))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
