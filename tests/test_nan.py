"""A NaN in the input spreads through snnfast.lif's kernels as through the reference's
autograd: forward to every later step of its neuron; backward, only where autograd's
products reach it. With a detached reset the reset's path does not exist, so a NaN membrane
must not turn the gradient of earlier steps into NaN (it did: 0 * NaN in the step's math)."""
import contextlib

import pytest
import torch

import snnfast
from snnfast import reference

from emulated_cuda import CudaDevice, cuda_devices, prepare

DEVICES = ["cpu"] + cuda_devices()


@pytest.mark.parametrize("surrogate", ["rectangle", "triangle", "sigmoid", "atan"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_nan_input_matches_reference(device, reset, detach_reset, surrogate):
    kernels = contextlib.nullcontext()
    if isinstance(device, CudaDevice):
        kernels = prepare(device).kernels()
        device = device.type
    g = torch.Generator().manual_seed(3)
    x = 0.5 + 0.8 * torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    x[2, 0, 0] = float("nan")
    beta = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    threshold = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)
    grad_spikes = torch.randn(x.shape, generator=g, dtype=torch.float64).to(device)
    # A gradient of u_T too: without one, autograd has no term of the last step's reset at
    # all, where the kernels multiply a zero g_u into it (NaN for a NaN membrane with a
    # hard reset that is not detached; earlier steps are NaN in both then).
    grad_u_last = torch.randn(x.shape[1:], generator=g, dtype=torch.float64).to(device)
    results = []
    for fn, context in ((snnfast.lif, kernels), (reference.lif, contextlib.nullcontext())):
        leaves = [t.detach().to(device).requires_grad_() for t in (x, beta, threshold)]
        with context:
            spikes, u_last = fn(leaves[0], leaves[1], threshold=leaves[2], reset=reset,
                                detach_reset=detach_reset, surrogate=surrogate, return_state=True)
            loss = (spikes * grad_spikes).sum() + (u_last * grad_u_last).sum()
            grads = torch.autograd.grad(loss, leaves)
        results.append([spikes.detach().cpu()] + [grad.cpu() for grad in grads])
    for name, got, want in zip(("spikes", "grad_x", "grad_beta", "grad_threshold"), *results):
        torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-10, atol=1e-12,
                                   msg=lambda m: f"{name}: {m}")


def test_detached_hard_reset_keeps_earlier_gradients_finite():
    # The case of the report: spikes.sum() through a hard, detached reset. The kernel gave
    # NaN at every step of the neuron that reads the NaN at step 2; autograd gives none.
    x = torch.zeros(5, 1, 1, dtype=torch.float64)
    x[0], x[1], x[2] = 0.5, 0.5, float("nan")
    x.requires_grad_()
    snnfast.lif(x, 0.5, detach_reset=True).sum().backward()
    grad = x.grad.flatten()
    assert torch.isfinite(grad).all(), grad
    expected = x.detach().clone().requires_grad_()
    reference.lif(expected, 0.5, detach_reset=True).sum().backward()
    torch.testing.assert_close(grad, expected.grad.flatten())
