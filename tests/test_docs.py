"""Runs every ```python block of docs/usage.md as written, each in a fresh namespace."""
import pathlib
import re

import pytest

USAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "usage.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", USAGE.read_text(), flags=re.S | re.M)


def test_usage_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_usage_example_runs(index):
    code = BLOCKS[index]  # an example with SpikingJelly runs too: install.sh installs it
    exec(compile(code, f"{USAGE.name}[block {index}]", "exec"), {"__name__": "__docs__"})
