"""The mutant definitions of `make mutants` (tests/mutants.py) still apply to the source.

Running the mutants takes minutes and is not part of `make test`; checking that each one
still finds its fragment takes milliseconds, so a refactor that moves a fragment is caught
here, with the message saying which mutant to update.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutants import MUTANTS, Mutant, NoLongerApplies, apply, copy_project, paths


def test_every_mutant_applies_to_the_current_source(tmp_path: Path) -> None:
    for mutant in MUTANTS:
        tree = tmp_path / mutant.name
        copy_project(tree)
        apply(mutant, tree)
        for pattern, _, replacement in mutant.edits:
            assert any(replacement in p.read_text() for p in paths(tree, pattern)), mutant.name


def test_a_fragment_that_is_gone_or_ambiguous_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("a = 1\nb = 1\n")
    gone = Mutant("gone", "", (("m.py", "c = 1", "c = 2"),), ())
    with pytest.raises(
        NoLongerApplies, match=r"'gone' no longer applies: m\.py contains the fragment 0 times"
    ):
        apply(gone, tmp_path)
    twice = Mutant("twice", "", (("*.py", " = 1", " = 2"),), ())
    with pytest.raises(NoLongerApplies, match="2 times"):
        apply(twice, tmp_path)
    assert (tmp_path / "m.py").read_text() == "a = 1\nb = 1\n"
