"""generated/ is exactly what the pinned generator makes from openapi.yaml: regenerate into a
temporary folder and compare byte for byte; on a difference, print the diff and the fix."""

import difflib
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "tensorlake_api_client"


def _differences(a: Path, b: Path, cmp: filecmp.dircmp[str] | None = None) -> list[str]:
    cmp = cmp or filecmp.dircmp(a, b, ignore=["__pycache__", ".ruff_cache"])
    out = [f"only in committed generated/: {a / n}" for n in cmp.left_only]
    out += [f"missing from generated/: {b / n}" for n in cmp.right_only]
    for name in cmp.diff_files + cmp.funny_files:
        old = (a / name).read_text().splitlines(keepends=True)
        new = (b / name).read_text().splitlines(keepends=True)
        out.append("".join(difflib.unified_diff(old, new, str(a / name), str(b / name))))
    for name, sub in cmp.subdirs.items():
        out += _differences(a / name, b / name, sub)
    return out


def test_spec_is_valid_openapi():
    spec, _ = read_from_filename(str(ROOT / "openapi.yaml"))
    validate(spec)


# A ruff configuration that would change every file if the generator's hooks read it.
HOSTILE_RUFF = """line-length = 40
[format]
quote-style = "single"
indent-style = "tab"
[lint]
select = ["ALL"]
"""


# One generation, among hostile surroundings: if it gives the committed bytes there, generated/ is
# fresh and the generator's hooks read no configuration around them (a bare folder adds nothing).
@pytest.mark.parametrize("surroundings", ["hostile-ruff-config"])
def test_generated_client_matches_spec(tmp_path, surroundings):
    if surroundings == "hostile-ruff-config":
        (tmp_path / "ruff.toml").write_text(HOSTILE_RUFF)
        (tmp_path / "pyproject.toml").write_text("[tool.ruff]\n" + HOSTILE_RUFF.replace("[", "[tool.ruff."))
    bin_dir = Path(sys.executable).parent  # the pinned openapi-python-client and ruff
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), str(tmp_path / PACKAGE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    diffs = _differences(ROOT / "generated" / PACKAGE, tmp_path / PACKAGE)
    assert not diffs, "generated/ is stale: run `make generate` and commit the result.\n" + "\n".join(diffs)
