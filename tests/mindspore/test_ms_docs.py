"""The MindSpore code blocks of README.md and docs/*.md run as written (see tests/support/doc_blocks.py)."""

from __future__ import annotations

import pytest

import doc_blocks

PLAN = doc_blocks.runnable("mindspore")


@pytest.mark.parametrize("page", sorted(PLAN))
def test_page_blocks_run(page, tmp_path):
    failures = doc_blocks.run(PLAN[page], tmp_path)
    assert not failures, "\n\n".join(failures)
