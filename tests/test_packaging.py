"""What a user installs: the wheel and sdist carry py.typed for both packages and the LICENSE, and a
user's program type-checks with `mypy --strict` against the *installed wheel* (not this checkout).

The wheel is built with the pinned uv (offline: hatchling is in uv's cache since `make setup`) and
installed with --no-deps into a fresh venv that borrows the dependencies from the project's venv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".tools" / "bin" / "uv"

USER_PROGRAM = """
import subprocess

from tensorlake_api_client.api.sandbox_processes import sandbox_process_get
from tensorlake_api_client.models import ProcessInfo
from tensorlake_sandbox import OutputLine, RemoteProcess, SandboxClient, run, sandbox_client, start


def main(url: str, token: str) -> int:
    client: SandboxClient = sandbox_client(base_url=url, api_key=token)
    done: subprocess.CompletedProcess[str] = run(client, ["echo", "hi"], timeout=10)
    raw: subprocess.CompletedProcess[bytes] = run(client, ["echo", "hi"], text=False)
    with start(client, ["cat"]) as p:
        proc: RemoteProcess = p
        if proc.stdin is not None:
            proc.stdin.write(done.stdout + raw.stdout.decode())
        first: str = next(proc.stdout)
        for item in proc.output:
            line: OutputLine = item
            print(line.stream, line.line, first)
        info: ProcessInfo = sandbox_process_get.sync(proc.pid, client=client)
        return info.pid + proc.wait(5)
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not UV.exists():
        pytest.skip("the pinned uv is not installed (run make setup)")
    out = tmp_path_factory.mktemp("dist")
    # sdist first, then the wheel built from that sdist: what an installer from PyPI does.
    subprocess.run(
        [str(UV), "build", "--offline", "--quiet", "--out-dir", str(out), str(ROOT)],
        check=True,
        timeout=240,
    )
    return out


def test_wheel_has_both_typed_markers_and_the_license(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tensorlake_sandbox/py.typed", "tensorlake_api_client/py.typed"} <= names
    licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert licenses, sorted(names)
    text = zipfile.ZipFile(wheel).read(licenses[0]).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_sdist_has_the_license_and_the_typed_markers(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "src/tensorlake_sandbox/py.typed", "packaging/tensorlake_api_client/py.typed"} <= names
    assert not any(n.startswith("generated/tensorlake_api_client/py.typed") for n in names)


def test_a_user_program_type_checks_against_the_installed_wheel(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "--offline", "--quiet", "--no-deps", "--python", str(python), str(wheel)],
        check=True,
        timeout=120,
    )
    # Dependencies (httpx, attrs, ...) from the project's venv, after the wheel's own packages.
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    probe = (
        "import tensorlake_sandbox as s, tensorlake_api_client as g; "
        "print(s.__file__, g.__file__, s.__version__)"
    )
    where = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert all(path.startswith(str(site)) for path in where[:2]), where  # the wheel, not this checkout
    version = subprocess.run(
        [str(venv / "bin" / "tensorlake-sandbox"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout == f"tensorlake-sandbox {where[2]}\n"

    program = tmp_path / "user_program.py"
    program.write_text(textwrap.dedent(USER_PROGRAM))
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "mypy"),
            "--strict",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            # The project's cache (warm after make check): what does not come from the wheel is
            # the same files, and what does is checked anew (its paths differ).
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--python-executable",
            str(python),
            str(program),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 source file" in result.stdout


# What building and testing from the sdist need (pyproject's sdist `only-include`); hatch adds
# PKG-INFO and .gitignore. Not benchmarks, their results or images, nor CI files.
SDIST_TOP_LEVEL = {
    "src",
    "generated",
    "packaging",
    "tests",
    "scripts",
    "templates",
    "openapi.yaml",
    "generator-config.yml",
    "Makefile",
    "uv.lock",
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",
}


def test_sdist_carries_what_building_and_testing_need_and_nothing_more(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    assert {n.split("/", 1)[0] for n in names} == SDIST_TOP_LEVEL
    assert not [n for n in names if n.endswith((".png", ".svg", ".jpg"))]
    # What the tests read beside the packages: the spec and templates (freshness), unasync.
    assert {"openapi.yaml", "scripts/unasync.py", "templates/client.py.jinja", "tests/conftest.py"} <= set(
        names
    )


def _requirement_names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0] for r in requirements]


def test_readme_names_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    readme = (ROOT / "README.md").read_text()
    install = readme[readme.index("## Install") : readme.index("## The client")]
    wanted = _requirement_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += _requirement_names(extra)
    missing = [name for name in wanted if f"`{name}`" not in install]
    assert not missing, f"the README's Install section does not name {missing}"
    assert "httpx and attrs" not in readme  # the old understatement
