"""Every code block of README.md and docs/*.md runs as written (framework-free ones here; Paddle's and
MindSpore's in their suites: tests/paddle/test_paddle_docs.py, tests/mindspore/test_ms_docs.py)."""

from __future__ import annotations

import subprocess

import pytest

import doc_blocks

PLAN = doc_blocks.runnable(None)


@pytest.mark.parametrize("page", sorted(PLAN))
def test_page_blocks_run(page, tmp_path):
    failures = doc_blocks.run(PLAN[page], tmp_path)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("page", doc_blocks.pages())
def test_every_fence_has_a_known_tag(page):
    bad = [f"{b.where}: ```{b.tag}" for b in doc_blocks.blocks(page) if b.tag not in doc_blocks.TAGS]
    assert not bad, f"fences need one of the tags {sorted(doc_blocks.TAGS)} (see tests/support/doc_blocks.py): {bad}"


@pytest.mark.parametrize("page", doc_blocks.pages())
def test_sh_blocks_are_valid_shell(page):
    # Not run here (installs, long runs), but a reader pastes them: they must at least parse.
    for b in doc_blocks.blocks(page):
        if b.tag == "sh":
            proc = subprocess.run(["bash", "-n", "-c", b.code], capture_output=True, text=True)
            assert proc.returncode == 0, f"{b.where}: {proc.stderr}"


def test_every_page_with_blocks_is_run_somewhere():
    # A python/bash block runs in the core suite or in its framework's; none falls between the two.
    planned = {(b.page, b.line) for fw in (None, *doc_blocks.FRAMEWORKS) for blocks in
               doc_blocks.runnable(fw).values() for b in blocks}
    for page in doc_blocks.pages():
        for b in doc_blocks.blocks(page):
            if b.tag in doc_blocks.RUN_TAGS:
                assert (b.page, b.line) in planned, b.where


SAMPLE = '''
Intro.

```python
import numpy as np
x = np.ones(3)
```

```python
import paddle
t = paddle.to_tensor(x)
```

- In a list:

  ```python
  y = t * 2          # continues the Paddle block: runs in its suite
  ```

```python
z = x + 1          # framework-free again
```

```bash
python -m rmsprop_ops.mindspore info
```

```
untagged
```
'''


def test_parse_and_classify():
    got = [(b.line, b.tag, b.framework, b.code.splitlines()[0]) for b in doc_blocks.parse(SAMPLE)]
    assert got == [
        (4, "python", None, "import numpy as np"),
        (9, "python", "paddle", "import paddle"),
        (16, "python", "paddle", "y = t * 2          # continues the Paddle block: runs in its suite"),
        (20, "python", None, "z = x + 1          # framework-free again"),
        (24, "bash", "mindspore", "python -m rmsprop_ops.mindspore info"),
        (28, "", None, "untagged"),
    ]


def test_a_failing_block_is_reported_with_its_place(tmp_path):
    blocks = doc_blocks.parse("```python\nx = 1\n```\n\n```python\nprint(x + undefined_name)\n```\n", "page.md")
    failures = doc_blocks.run(blocks, tmp_path)
    assert len(failures) == 1 and "page.md:5" in failures[0] and "NameError" in failures[0]
    assert doc_blocks.run(doc_blocks.parse("```bash\nfalse\n```\n", "p.md"), tmp_path)[0].startswith(
        "FAILED: the bash block at p.md:1")
