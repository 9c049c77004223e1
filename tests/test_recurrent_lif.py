"""The tests of snnfast.recurrent_lif that only it has: the recurrence itself, the CPU glue's
row blocks, the persistent and per-step CUDA paths, compile, and its argument errors. The
comparisons against the reference on every device are in test_ops.py (oracle.py)."""
import pytest
import torch

import snnfast
from snnfast import _library, reference

from emulated_cuda import CudaDevice, cuda_devices, launches, prepare, set_device
from oracle import RECURRENT_LIF, check_against_reference, grad_outputs, run, sample_inputs

pytestmark = pytest.mark.skipif(
    "cpu" not in _library.RECURRENT_LIF_DEVICES, reason="snnfast._C not built"
)


def make_inputs(T, B, N, dtype=torch.float64, device="cpu", seed=0):
    return sample_inputs(RECURRENT_LIF, device, dtype, T=T, B=B, F=(N,), kinds=("neuron",) * 3, seed=seed)


def test_recurrence_changes_the_spikes():
    # Guards the test inputs: with V dropped the spikes differ, so the tests above see V.
    inputs = make_inputs(T=8, B=4, N=6)
    p = {k: inputs[k] for k in ("beta", "alpha", "threshold", "u0")}
    with_V = snnfast.recurrent_lif(inputs["x"], inputs["V"], p.pop("beta"), **p)
    p = {k: inputs[k] for k in ("beta", "alpha", "threshold", "u0")}
    without_V = snnfast.lif(inputs["x"], p.pop("beta"), **p)
    assert not torch.equal(with_V, without_V)


def test_row_blocks_on_threads():
    # Large enough (T * N * B) that the CPU glue splits the batch into blocks of rows, one
    # time loop per thread; V requires grad there too.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inputs = make_inputs(T=64, B=16, N=64, seed=31)
        check_against_reference(RECURRENT_LIF, "cpu", inputs, reset="hard", surrogate="rectangle")
    finally:
        torch.set_num_threads(threads)


def test_no_time_steps():
    # u_T is u0; the reference's graph does not reach x or V at all.
    inputs = make_inputs(T=0, B=2, N=3)
    results = []
    for fn in (snnfast.recurrent_lif, reference.recurrent_lif):
        t = {k: v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) else v
             for k, v in inputs.items()}
        spikes, u_last = fn(t["x"], t["V"], t["beta"], u0=t["u0"], return_state=True)
        g = torch.randn(u_last.shape, generator=torch.Generator().manual_seed(2), dtype=u_last.dtype)
        results.append((spikes, u_last) + torch.autograd.grad((u_last * g).sum(), [t["u0"]]))
    assert results[0][0].shape == (0, 2, 3)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_compile_fullgraph():
    inputs = make_inputs(T=4, B=2, N=3, seed=23)
    fn = torch.compile(lambda x, V, beta: snnfast.recurrent_lif(x, V, beta, surrogate="triangle"),
                       fullgraph=True, backend="aot_eager")
    t = {k: inputs[k].detach().clone().requires_grad_() for k in ("x", "V", "beta")}
    spikes = fn(t["x"], t["V"], t["beta"])
    grads = torch.autograd.grad(spikes.sum() + 0 * spikes.mean(), [t["x"], t["V"]], allow_unused=True)
    r = {k: inputs[k].detach().clone().requires_grad_() for k in ("x", "V", "beta")}
    spikes_ref = reference.recurrent_lif(r["x"], r["V"], r["beta"], surrogate="triangle")
    grads_ref = torch.autograd.grad(spikes_ref.sum(), [r["x"], r["V"]])
    torch.testing.assert_close(spikes, spikes_ref)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


# ---- bad input: clear errors naming the argument ----

def bad(**changes):
    inputs = make_inputs(T=3, B=2, N=4)
    inputs.update(changes)
    return inputs


@pytest.mark.parametrize("inputs,error,match", [
    (bad(V=torch.randn(4, 3, dtype=torch.float64)), ValueError, "V must be a square"),
    (bad(V=torch.randn(5, 5, dtype=torch.float64)), ValueError, r"V has shape \(5, 5\) but x has N = 4"),
    (bad(V=torch.randn(4, dtype=torch.float64)), ValueError, "V must be a square"),
    (bad(x=torch.randn(3, 2, 4, 1, dtype=torch.float64)), ValueError, r"x must be \[T, B, N\]"),
    (bad(x=torch.randn(3, 4, dtype=torch.float64)), ValueError, "x must be"),
    (bad(V=torch.ones(4, 4, dtype=torch.int64)), TypeError, "V must be floating point"),
    (bad(V=[[0.0] * 4] * 4), TypeError, "V must be a torch.Tensor"),
    (bad(V=torch.randn(4, 4, dtype=torch.float64, device="meta")), ValueError, "V is on meta but x is on cpu"),
    (bad(beta=torch.rand(3, dtype=torch.float64)), ValueError, "beta has shape"),
    (bad(u0=torch.rand(3, 4, dtype=torch.float64)), ValueError, "u0 has shape"),
])
def test_bad_input(inputs, error, match):
    with pytest.raises(error, match=match):
        snnfast.recurrent_lif(inputs["x"], inputs["V"], inputs["beta"], u0=inputs["u0"])


def test_bad_input_in_the_op():
    # Callers of torch.ops.snnfast.recurrent_lif get the C++ checks.
    inputs = make_inputs(T=3, B=2, N=4)
    args = [inputs["x"], torch.randn(4, 3, dtype=torch.float64), inputs["beta"], inputs["alpha"],
            inputs["threshold"], None, "hard", 0.0, False, "rectangle", 1.0]
    with pytest.raises(RuntimeError, match=r"V must be \[N, N\] with N = 4"):
        torch.ops.snnfast.recurrent_lif(*args)
    args[0], args[1] = torch.randn(3, 2, 4, 1, dtype=torch.float64), inputs["V"]
    with pytest.raises(RuntimeError, match=r"x must be \[T, B, N\]"):
        torch.ops.snnfast.recurrent_lif(*args)


# ---- CUDA: the persistent kernel (V in shared memory) and the per-step cuBLAS path, on the
# emulated device (tests/emulated_cuda.py; an H100's shared memory, so the same paths as on
# one) and on a real GPU where there is one ----

@pytest.fixture(params=cuda_devices(), ids=str)
def cuda(request):
    device = prepare(request.param)
    if not device.emulated:
        assert "cuda" in _library.RECURRENT_LIF_DEVICES, "snnfast._C was built without its CUDA kernels"
    return device


@pytest.mark.parametrize("N", [33, 200, 300])
def test_cuda_float32(cuda, N):
    # N = 33 and 200: persistent kernel; N = 300: V (360 KB) exceeds shared memory, per-step path.
    inputs = make_inputs(T=10, B=4, N=N, dtype=torch.float32, seed=N)
    grads = grad_outputs(inputs)
    got = run(snnfast.recurrent_lif, inputs, grads, cuda, surrogate="triangle")
    want = run(snnfast.recurrent_lif, inputs, grads, "cpu", surrogate="triangle")
    # A sum in a different order may move h across the threshold; allow a few flips only.
    assert (got["spikes"] != want["spikes"]).float().mean() < 0.01
    if torch.equal(got["spikes"], want["spikes"]):
        for name in want:
            torch.testing.assert_close(got[name], want[name], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("path", ["persistent", "per-step"])
@pytest.mark.parametrize("reset,surrogate,detach_reset", [("hard", "triangle", True), ("soft", "sigmoid", False)])
def test_emulated_paths_with_optional_gradients(path, reset, surrogate, detach_reset):
    # Both paths at one odd size, chosen by the emulated device's shared memory (the
    # persistent kernel needs (N * N + 2 * N) * 8 bytes), with an odd batch, u0 shared by the
    # batch and a membrane gradient. Only the emulated device can be given another limit.
    emulated = prepare(CudaDevice("emulated"))
    N = 37
    set_device(4, (N * N + 2 * N) * 8 if path == "persistent" else (N * N + 2 * N) * 8 - 1)
    T = 9
    inputs = make_inputs(T=T, B=5, N=N, seed=41)
    inputs["u0"] = inputs["u0"][:1].detach().requires_grad_()
    independent, synchronised = launches()
    check_against_reference(RECURRENT_LIF, emulated, inputs, reset=reset, surrogate=surrogate,
                            detach_reset=detach_reset)
    # Forward and backward: one launch of a persistent kernel each, or one step kernel per step.
    expected = (independent, synchronised + 2) if path == "persistent" else (independent + 2 * T, synchronised)
    assert launches() == expected


# ---- detach_recurrent (issue 15): truncated BPTT through the recurrent spikes only ----

@pytest.fixture(params=[CudaDevice("cpu")] + cuda_devices(), ids=str)
def any_device(request):
    return prepare(request.param)


@pytest.mark.parametrize("N", [6, 300])  # 300: V exceeds the emulated shared memory, per-step path
@pytest.mark.parametrize("reset,surrogate", [("hard", "rectangle"), ("soft", "sigmoid"), ("none", "atan")])
def test_detach_recurrent_matches_reference_float64(any_device, reset, surrogate, N):
    inputs = make_inputs(T=9, B=3, N=N, seed=N)
    got = check_against_reference(RECURRENT_LIF, any_device, inputs, reset=reset, surrogate=surrogate,
                                  detach_recurrent=True)
    # Guards the test: the cut changes the gradients that flow through o_{t-1} (x's), not the
    # forward pass.
    full = run(snnfast.recurrent_lif, inputs, grad_outputs(inputs), any_device, reset=reset,
               surrogate=surrogate)
    assert torch.equal(got["spikes"], full["spikes"])
    assert not torch.allclose(got["grad_x"], full["grad_x"])


def test_detach_recurrent_module():
    torch.manual_seed(0)
    layers = [snnfast.nn.RecurrentLIF(4, 6, beta=0.8, threshold=0.5, detach_recurrent=detach)
              for detach in (False, True)]
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.randn(12, 3, 4).requires_grad_()
    outputs = [layer(x) for layer in layers]
    assert torch.equal(*outputs)
    grads = [torch.autograd.grad(out.sum(), [x, layer.V]) for out, layer in zip(outputs, layers)]
    current = layers[1].linear(x)
    want = torch.autograd.grad(reference.recurrent_lif(current, layers[1].V, 0.8, threshold=0.5,
                                                       detach_recurrent=True).sum(), [x, layers[1].V])
    for got, expected in zip(grads[1], want):
        torch.testing.assert_close(got, expected)
    assert not torch.allclose(grads[0][0], grads[1][0])
    with pytest.raises(TypeError, match="detach_recurrent must be True or False"):
        snnfast.nn.RecurrentLIF(4, 6, detach_recurrent=1)
