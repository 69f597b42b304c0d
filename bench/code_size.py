"""9. Code size: everything between the generated client and the socket, in lines.

Issue 20's goal: client, settings, transport, errors and bodies in ≤ 900 lines, from 1,959.
The figure is ``wc -l`` (every line, blank or not), the measure the 1,959 baseline was taken
with; code-only lines (no blank lines, comments or docstrings) are shown beside it. No timing:
it reads files (and, for the baseline, ``git show``) and takes well under a second.

Which files count is decided here, in one place (`COUNTED`, `GENERATED`, `SOCKET_MODULES`),
and the report lists each one with its count and why it is in (or out), so a reader can judge.
"""

from __future__ import annotations

import ast
import glob
import io
import os
import subprocess
import tokenize

from ._common import ROOT, Row, Section

__all__ = ["run"]

PKG = "tensorlake_sandbox"
SRC = "src"

# The files counted, as globs relative to the repository, each with its role.
COUNTED: list[tuple[str, str]] = [
    ("src/tensorlake_sandbox/_client.py", "client and settings: `sandbox_client`, `SandboxClient`"),
    ("src/tensorlake_sandbox/_urls.py", "settings: URL and loopback rules"),
    ("src/tensorlake_sandbox/_errors.py", "errors: the error table and classes"),
    ("src/tensorlake_sandbox/_transports/*.py", "transport: every file in `_transports/`"),
    ("src/tensorlake_sandbox/_async/_transport.py", "transport: the one source of sync and async"),
]
# Files generated from a counted one: listed, not counted (their source is).
GENERATED: dict[str, str] = {
    "src/tensorlake_sandbox/_sync/_transport.py": (
        "generated from `_async/_transport.py` by `scripts/unasync.py`: listed, not counted"
    ),
}
# A module of the package imported by a counted file is counted too when it imports one of
# these (it then holds socket/TLS code for the transport); the rule is applied to the files
# it brings in as well.
SOCKET_MODULES = frozenset({"socket", "ssl", "select", "selectors"})

GOAL = 900
# The baseline: the files issue 20 measured at commit 3ccb5df (`wc -l` sums to 1,959).
BASELINE_COMMIT = "3ccb5df"
BASELINE_LINES = 1959
BASELINE_FILES = [
    f"src/tensorlake_sandbox/{name}.py"
    for name in (
        "_client",
        "_http",
        "_native",
        "_aiohttp",
        "_httpx_speedups",
        "_errors",
        "_bodies",
        "_checks",
        "_urls",
    )
]

_NOT_CODE = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
)


def wc_lines(text: str) -> int:
    """What ``wc -l`` prints: the number of newline characters."""
    return text.count("\n")


def code_lines(text: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring.

    A docstring is a string literal standing alone as a statement (a module's, class's or
    function's first statement, or an attribute's docstring after it).
    """
    doc: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            doc.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in _NOT_CODE:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - doc)


def _module_file(module: str) -> str | None:
    """The repository-relative file of a module of the package, or None."""
    if module != PKG and not module.startswith(PKG + "."):
        return None
    base = os.path.join(SRC, *module.split("."))
    for rel in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(os.path.join(ROOT, rel)):
            return rel
    return None


def _module_name(rel: str) -> str:
    parts = os.path.splitext(os.path.relpath(rel, SRC))[0].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(rel: str, text: str) -> tuple[set[str], set[str]]:
    """(files of the package that ``rel`` imports, top-level names of everything it imports)."""
    module = _module_name(rel)
    package = module if rel.endswith("__init__.py") else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from . import submodule` names the submodule's file
                sub = f"{base}.{alias.name}"
                names.add(sub if _module_file(sub) is not None else base)
    files = {f for f in map(_module_file, names) if f is not None and f != rel}
    return files, {n.split(".")[0] for n in names}


def _read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def _baseline() -> tuple[int, int | None, str]:
    """(wc -l total, code-only total or None, how it was obtained) of the baseline files."""
    total, code = 0, 0
    for rel in BASELINE_FILES:
        try:
            out = subprocess.run(
                ["git", "show", f"{BASELINE_COMMIT}:{rel}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as e:
            why = getattr(e, "stderr", None) or str(e)
            return (
                BASELINE_LINES,
                None,
                f"the figure recorded in issue 20 (`git show {BASELINE_COMMIT}:{rel}` failed here: "
                f"{' '.join(str(why).split())[:120]})",
            )
        total += wc_lines(out)
        code += code_lines(out)
    return total, code, f"measured by this run: `git show {BASELINE_COMMIT}:<path> | wc -l`, summed"


def run() -> Section:
    sec = Section(
        title="9. Code size: between the generated client and the socket",
        what=(
            "Lines of the files between the generated client and the socket (client, settings, "
            "transport, errors, bodies), counted as `wc -l` counts them (every line): the measure of "
            "issue 20's goal and of its baseline. Code-only lines (no blank lines, comments or "
            "docstrings) are shown beside them, for information. The files counted are listed in "
            "`bench/code_size.py` (`COUNTED`); a module of the package that a counted file imports is "
            "counted too when it imports " + ", ".join(f"`{m}`" for m in sorted(SOCKET_MODULES)) + " "
            "(socket/TLS code for the transport). Every module of the package that the counted files "
            "import is listed below, counted or not, with the reason; "
            "`src/tensorlake_sandbox/_sync/_transport.py` is generated from "
            "`_async/_transport.py` by `scripts/unasync.py`, so it is listed as generated and not "
            "counted."
        ),
        columns=["lines (wc -l)", "code-only lines"],
        label="file",
    )
    why: dict[str, str] = {}
    for pattern, role in COUNTED:
        for rel in sorted(glob.glob(pattern, root_dir=ROOT)):
            if rel not in GENERATED and os.path.isfile(os.path.join(ROOT, rel)):
                why.setdefault(rel, role)
    text = {rel: _read(rel) for rel in why}
    # Modules the counted files import: counted when they hold socket/TLS code (to a fixpoint).
    seen: dict[str, str] = {}
    todo = list(why)
    while todo:
        rel = todo.pop()
        files, _ = _imports(rel, text[rel])
        for dep in sorted(files):
            if dep in why:
                continue
            if dep in GENERATED:
                seen.setdefault(dep, GENERATED[dep])
                continue
            dep_text = _read(dep)
            uses = sorted(_imports(dep, dep_text)[1] & SOCKET_MODULES)
            if uses:
                why[dep] = f"imported by `{rel}` and imports {', '.join(uses)}: socket/TLS code, counted"
                text[dep] = dep_text
                seen.pop(dep, None)
                todo.append(dep)
            else:
                seen.setdefault(
                    dep,
                    f"imported by `{rel}`; imports none of {', '.join(sorted(SOCKET_MODULES))}: not counted",
                )
    total = code = 0
    for rel in sorted(why):
        n, c = wc_lines(text[rel]), code_lines(text[rel])
        total, code = total + n, code + c
        sec.rows.append(Row(f"`{rel}`", [f"{n:,}", f"{c:,}"], why[rel]))
    sec.rows.append(Row(f"**total, {len(why)} files counted**", [f"**{total:,}**", f"{code:,}"]))
    for rel in sorted(seen):
        dep_text = _read(rel)
        sec.rows.append(
            Row(f"`{rel}` (not counted)", [f"{wc_lines(dep_text):,}", f"{code_lines(dep_text):,}"], seen[rel])
        )
    base, base_code, how = _baseline()
    sec.rows.append(
        Row(
            f"baseline: {len(BASELINE_FILES)} files at {BASELINE_COMMIT} (not counted)",
            [f"{base:,}", f"{base_code:,}" if base_code is not None else "-"],
            ", ".join(os.path.basename(f) for f in BASELINE_FILES),
        )
    )
    sec.verdicts.append(
        f"Between the generated client and the socket: {total:,} lines (`wc -l`) in {len(why)} files — "
        f"goal (issue 20) ≤ {GOAL} lines, from {BASELINE_LINES:,}: "
        f"**{'met' if total <= GOAL else 'NOT met'}**; code-only (no blanks, comments, docstrings; "
        f"not the goal's measure): {code:,} lines"
        + (f", from {base_code:,} at {BASELINE_COMMIT}" if base_code is not None else "")
        + "."
    )
    same = "the same" if base == BASELINE_LINES else "DIFFERENT"
    sec.verdicts.append(
        f"Baseline: {', '.join(os.path.basename(f).removesuffix('.py') for f in BASELINE_FILES)} at "
        f"commit {BASELINE_COMMIT}: {base:,} lines, {how}"
        + (f" (issue 20 recorded {BASELINE_LINES:,}: {same})" if base_code is not None else "")
        + "."
    )
    sec.limits += [
        "Line counts, not complexity: a long line counts once. Which files belong between the "
        "generated client and the socket is a judgement: the table lists every file counted and "
        "every package module they import that was not, so the choice can be checked.",
    ]
    return sec
