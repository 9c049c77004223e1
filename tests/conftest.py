import os

# Every output of a kernel is filled with NaN before the kernel runs (see csrc/lif.cpp), so a
# comparison against the reference also proves that every element was written.
os.environ.setdefault("SNNFAST_POISON", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Skips other than for a GPU fail in CI (see strict_skips.py).
from strict_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402, F401

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
