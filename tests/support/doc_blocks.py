"""The fenced code blocks of README.md and docs/*.md, and how the docs tests run them.

Every fence carries a tag, and the tag alone decides what happens to the block (``TAGS``): ``python``
and ``bash`` blocks run; the others are declared not to, each for a stated reason. There is no list of
blocks to skip: a block that must not run takes another tag.

A page's ``python`` blocks run in order in one namespace, as a reader pasting them in order would. A
block is a framework block when it imports ``paddle`` / ``mindspore`` (or ``rmsprop_ops.paddle`` /
``.mindspore``), or when it uses a name that an earlier framework block of its page defined; framework
blocks run only in that framework's suite (``pytest -m paddle``), after the page's earlier framework-free
blocks. ``bash`` blocks run from the repository root with the test's interpreter first on PATH; one that
names a framework runs in that framework's suite.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRAMEWORKS = ("paddle", "mindspore")

TAGS = {
    "python": "run: a page's blocks in order, in one namespace",
    "bash": "run from the repository root (cheap commands)",
    "sh": "not run here: installs and long runs; .ci/run runs the README's set-up block in a fresh venv",
    "text": "not run: output, formulas, signatures, pseudo-code",
    "c": "not run: C fragments (tests/core/test_c_abi.py compiles a whole program against the C ABI)",
}
RUN_TAGS = ("python", "bash")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FRAMEWORK_IMPORT = {fw: re.compile(rf"^\s*(import|from)\s+(rmsprop_ops\.)?{fw}\b", re.M) for fw in FRAMEWORKS}


@dataclasses.dataclass(frozen=True)
class Block:
    page: str          # relative to the repository root
    line: int          # of the opening fence, 1-based
    tag: str
    code: str
    framework: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    return ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))


def parse(text: str, page: str = "<page>") -> list[Block]:
    """The fenced blocks of a Markdown text, with their tags (first word of the info string)."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, start = m["indent"], m["fence"], i
        body = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and \
                    not close["info"].strip():
                break
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        tag = (m["info"].split() or [""])[0].lower()
        found.append(Block(page, start + 1, tag, "\n".join(body) + "\n"))
    return _classify(found)


def _names(code: str) -> tuple[set[str], set[str]]:
    """(names a Python block defines, names it uses without defining first)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # reported when the block runs
        return set(), set()
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
    return defined, used - defined - set(dir(builtins))


def _classify(found: list[Block]) -> list[Block]:
    owner: dict[str, str] = {}  # name -> framework of the block that defined it
    out = []
    for b in found:
        framework = None
        if b.tag == "python":
            defined, used = _names(b.code)
            framework = next((fw for fw in FRAMEWORKS if _FRAMEWORK_IMPORT[fw].search(b.code)), None)
            framework = framework or next((owner[n] for n in sorted(used) if n in owner), None)
            for n in defined:
                if framework:
                    owner[n] = framework
                else:
                    owner.pop(n, None)
        elif b.tag == "bash":
            framework = next((fw for fw in FRAMEWORKS if re.search(rf"\b{fw}\b", b.code)), None)
        out.append(dataclasses.replace(b, framework=framework))
    return out


def blocks(page: str) -> list[Block]:
    return parse((ROOT / page).read_text(encoding="utf-8"), page)


def runnable(framework: str | None) -> dict[str, list[Block]]:
    """Per page, the blocks a suite runs: a framework's own blocks after the page's framework-free ones
    (``framework=None``: the framework-free blocks alone); pages with nothing of its own are left out."""
    plan = {}
    for page in pages():
        own = [b for b in blocks(page) if b.tag in RUN_TAGS and b.framework == framework]
        if own:
            plan[page] = [b for b in blocks(page) if b.tag in RUN_TAGS and b.framework in (None, framework)]
    return plan


_RUNNER = r"""
import json, sys, traceback
ns = {"__name__": "__main__"}
for b in json.load(open(sys.argv[1])):
    try:
        exec(compile(b["code"], b["where"], "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"FAILED: the python block at {b['where']}", file=sys.stderr)
        sys.exit(1)
"""


def run(page_blocks: list[Block], workdir: pathlib.Path, timeout: float = 600) -> list[str]:
    """Runs the blocks (python ones in one subprocess, sharing a namespace, from ``workdir``; bash ones from
    the repository root) and returns one message per failure."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    failures = []
    python = [{"code": b.code, "where": b.where} for b in page_blocks if b.tag == "python"]
    if python:
        spec = workdir / "blocks.json"
        spec.write_text(json.dumps(python))
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(spec)], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            failures.append(f"{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}")
    for b in page_blocks:
        if b.tag == "bash":
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", b.code], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                failures.append(f"FAILED: the bash block at {b.where} (exit {proc.returncode}):\n{b.code}\n"
                                f"{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}")
    return failures


if __name__ == "__main__":
    # python tests/support/doc_blocks.py README.md sh 0  -> the code of README.md's first ```sh block
    # (.ci/run runs the README's set-up commands exactly as written).
    page, tag, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print([b for b in blocks(page) if b.tag == tag][index].code, end="")
