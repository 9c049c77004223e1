"""snnfast/utils/memory.py: the saved-bytes counter on hand-counted cases."""
import torch

import snnfast
from snnfast.utils.memory import SavedTensorBytes

# --- the saved-bytes counter --------------------------------------------------------------

def test_counter_counts_each_storage_once():
    a = torch.randn(10, requires_grad=True)
    with SavedTensorBytes() as saved:
        # mul saves both of its inputs: two views of a's one storage of 10 floats.
        (a[:5] * a[5:]).sum()
    assert saved.total == 10 * 4
    assert saved.excluding([a]) == 0


def test_counter_on_the_plain_op():
    T, B, N = 6, 3, 7
    x = torch.randn(T, B, N, requires_grad=True)
    with SavedTensorBytes() as saved:
        snnfast.lif(x, 0.5)
    # The float32 membrane trace, and beta, alpha and threshold as 0-d float64 host scalars;
    # not x, which only the gradient of a learnable alpha would need.
    assert saved.total == T * B * N * 4 + 3 * 8
