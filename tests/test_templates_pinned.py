"""Every template override in templates/ is pinned to the generator's original it was merged with.

An override renders openapi-python-client's own template (as ``upstream/<name>``, see
scripts/generate.py) and edits it, or imports its macros. When a generator upgrade changes one of
those originals, this test fails and names the override to re-merge; ``make check`` runs it.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import jinja2
import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
UPSTREAM = files("openapi_python_client") / "templates"
MERGED_WITH = "0.29.1"  # the openapi-python-client the pins below come from

# The generator's template -> (its sha256 when the override was merged, the override built on it).
PINS = {
    "client.py.jinja": (
        "4eac65762f21014a7fbf59e730f1be6d28c9c85ddc1c40b458b6ff5f67a64c9e",
        "client.py.jinja",
    ),
    "endpoint_module.py.jinja": (
        "c1b2628053eb4875ba59566baa5ae907666f9cbfafa308d93f970a4404b7cd52",
        "endpoint_module.py.jinja",
    ),
    # Not overridden: endpoint_module.py.jinja imports its macros and edits its docstring's Raises.
    "endpoint_macros.py.jinja": (
        "58edb8b4913db6ed4863c633fb39365364494398c8156c77151c6676f1b28fee",
        "endpoint_module.py.jinja",
    ),
    "errors.py.jinja": (
        "b6ba7ea79aa7d7f24b47119985d1ed20268d3da0ab70309ee138088a106b6af9",
        "errors.py.jinja",
    ),
    "types.py.jinja": (
        "93df9d75883a4eafac77dd21bc6907f3ef612e3f7841e08656618dcf6c4ce494",
        "types.py.jinja",
    ),
}
HELPERS = {"patch.jinja"}  # templates/ files the generator does not know: they shadow nothing


@pytest.mark.parametrize("original", sorted(PINS))
def test_generator_template_is_the_one_the_override_was_merged_with(original: str) -> None:
    pinned, override = PINS[original]
    actual = hashlib.sha256((UPSTREAM / original).read_bytes()).hexdigest()
    assert actual == pinned, (
        f"openapi-python-client {version('openapi-python-client')} changed its {original} "
        f"(pinned from {MERGED_WITH}): re-merge templates/{override} with it (diff the two versions "
        f"of {original}), run make generate, then pin {original} to {actual} here."
    )


def test_every_override_is_pinned() -> None:
    in_folder = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.jinja")}
    overrides = in_folder - HELPERS
    assert overrides == {override for _, override in PINS.values()}, (
        "each file in templates/ that replaces a generator template needs a pin in PINS"
    )
    assert all((UPSTREAM / name).is_file() for name in overrides), "an override replaces nothing"
    shadowing = [name for name in HELPERS if (UPSTREAM / name).is_file()]
    assert not shadowing, f"the generator now has its own {shadowing}: rename the helper"


def test_an_edit_that_no_longer_applies_fails_the_generation() -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True)
    patch = env.get_template("patch.jinja").module
    assert patch.edited("a = 1\n", [("1", "2")]) == "a = 2\n"  # type: ignore[attr-defined]
    assert patch.before("head\ndef tail", "\ndef ") == "head"  # type: ignore[attr-defined]
    with pytest.raises(jinja2.UndefinedError, match=r"re-merge the override.*parsed: T"):
        patch.edited("parsed: X\n", [("parsed: T", "parsed: U")])  # type: ignore[attr-defined]
    with pytest.raises(jinja2.UndefinedError, match="re-merge the override"):
        patch.before("no anchor here", "\ndef _parse_response(")  # type: ignore[attr-defined]
