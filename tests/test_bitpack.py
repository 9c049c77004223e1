"""snnfast/longseq/bitpack.py: spikes packed as bits, round trip, layout and errors."""
import math

import pytest
import torch

from snnfast.longseq import bitpack

# --- bits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (3, 31), (2, 3, 33), (4, 2, 64), (2, 0, 5),
                                   (0, 3), (2, 1, 1, 13)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.bool])
def test_bits_round_trip(device, shape, dtype):
    spikes = (torch.rand(shape) < 0.5).to(device=device, dtype=dtype)
    packed = bitpack.pack_bits(spikes, require_binary=True)
    assert packed.dtype == torch.uint8
    assert packed.shape == shape[:-1] + (math.ceil(shape[-1] / 8),)
    assert torch.equal(bitpack.unpack_bits(packed, shape[-1], dtype), spikes)
    # A slice along time unpacks on its own.
    if len(shape) >= 2 and shape[0] > 1:
        assert torch.equal(bitpack.unpack_bits(packed[1:], shape[-1], dtype), spikes[1:])


def test_bits_layout(device):
    spikes = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0, 1, 1], device=device)
    # spike j is bit j % 8 of byte j // 8, least significant first; padding bits are 0.
    assert bitpack.pack_bits(spikes).tolist() == [0b1001, 0b11]


def test_bits_errors(device):
    with pytest.raises(ValueError, match="only 0 and 1"):
        bitpack.pack_bits(torch.tensor([0.0, 1.0, 0.5], device=device), require_binary=True)
    with pytest.raises(ValueError, match="at least one dimension"):
        bitpack.pack_bits(torch.tensor(1.0, device=device))
    with pytest.raises(ValueError, match="bytes in the last dimension"):
        bitpack.unpack_bits(torch.zeros(3, 2, dtype=torch.uint8, device=device), 17)
    with pytest.raises(TypeError, match="uint8"):
        bitpack.unpack_bits(torch.zeros(3, 2, device=device), 16)
