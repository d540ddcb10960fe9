from __future__ import annotations

import pytest

from harness.markdown_table import markdown_table


def test_markdown_table_shape_escaping_and_missing_values():
    text = markdown_table(("a", "b"), [(1, None), ("x|y", "two\nlines")])
    assert text == "| a | b |\n|---|---|\n| 1 | – |\n| x\\|y | two<br>lines |\n"


def test_markdown_table_refuses_ragged_rows():
    with pytest.raises(ValueError, match="row 0 has 1 cells, the header has 2"):
        markdown_table(("a", "b"), [(1,)])
