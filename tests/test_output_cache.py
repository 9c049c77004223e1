"""The cache of large CPU outputs (snnfast.output_cache): reused storage gives the same
results, its free blocks stay under the limit, and release() / set_limit(0) empty it."""
import pytest
import torch

import snnfast
from snnfast import output_cache, reference

# [T, B, N] float32 of 8 MiB: above the cache's 4 MiB floor.
SHAPE = (8, 16, 16384)


@pytest.fixture(autouse=True)
def default_limit():
    limit = output_cache.stats().limit_bytes
    output_cache.release()
    yield
    output_cache.set_limit(limit)
    output_cache.release()


def _lif(x):
    return snnfast.lif(x, 0.7, reset="soft", return_membrane=True)


def test_freed_output_storage_is_reused_for_the_next_call():
    x = torch.randn(SHAPE)
    spikes, membrane = _lif(x)
    pointers = {spikes.data_ptr(), membrane.data_ptr()}
    before = output_cache.stats()
    assert before.used_bytes >= 2 * x.numel() * 4
    del spikes, membrane
    freed = output_cache.stats()
    assert freed.cached_bytes >= 2 * x.numel() * 4
    spikes, membrane = _lif(x)
    after = output_cache.stats()
    assert after.hits >= freed.hits + 2
    assert {spikes.data_ptr(), membrane.data_ptr()} == pointers


def test_reused_storage_gives_the_reference_result_forward_and_backward(monkeypatch):
    monkeypatch.setenv("SNNFAST_POISON", "1")  # cached blocks are poisoned like fresh ones
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=generator, requires_grad=True)
    grad = torch.randn(SHAPE, generator=generator)
    want_spikes, want_membrane = reference.lif(x, 0.7, reset="soft", return_membrane=True)
    (want_x,) = torch.autograd.grad(want_spikes, x, grad)
    for _ in range(3):  # the first call maps fresh blocks, the next ones reuse them
        spikes, membrane = _lif(x)
        (grad_x,) = torch.autograd.grad(spikes, x, grad)
        assert torch.equal(spikes, want_spikes)
        torch.testing.assert_close(membrane, want_membrane)
        torch.testing.assert_close(grad_x, want_x)
        del spikes, membrane, grad_x
    assert output_cache.stats().hits > 0


def test_free_blocks_stay_under_the_limit_and_release_returns_them():
    block = 8 << 20
    output_cache.set_limit(3 * block)
    outputs = [_lif(torch.randn(SHAPE)) for _ in range(3)]  # 6 blocks in use
    del outputs
    stats = output_cache.stats()
    assert 0 < stats.cached_bytes <= 3 * block
    output_cache.release()
    assert output_cache.stats().cached_bytes == 0
    assert output_cache.stats().limit_bytes == 3 * block


def test_limit_zero_caches_nothing_and_outputs_still_work():
    output_cache.set_limit(0)
    x = torch.randn(SHAPE)
    spikes, _ = _lif(x)
    del spikes
    assert output_cache.stats().cached_bytes == 0
    assert torch.equal(_lif(x)[0], reference.lif(x, 0.7, reset="soft"))


def test_a_cached_output_outlives_release_and_can_be_resized():
    x = torch.randn(SHAPE)
    spikes, _ = _lif(x)
    copy = spikes.clone()
    output_cache.release()
    assert torch.equal(spikes, copy)
    spikes.resize_(2 * spikes.numel())  # through the cache's allocator
    assert torch.equal(spikes[: copy.numel()], copy.flatten())


def test_set_limit_checks_its_argument():
    with pytest.raises(ValueError, match="nbytes must be an int >= 0"):
        output_cache.set_limit(-1)
    with pytest.raises(ValueError, match="nbytes"):
        output_cache.set_limit(1.5)
