"""snnfast.recurrent_lif against the pure-PyTorch reference (snnfast.reference.recurrent_lif):
forward outputs and every gradient, with the same random grad_out through both."""
import contextlib

import pytest
import torch

import snnfast
from snnfast import _library, reference

from emulated_cuda import CudaDevice, cuda_devices, launches, prepare, set_device

SURROGATES = ("rectangle", "triangle", "sigmoid", "atan")
RESETS = ("hard", "soft", "none")

pytestmark = pytest.mark.skipif(
    "cpu" not in _library.RECURRENT_LIF_DEVICES, reason="snnfast._C not built"
)


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    # Every output starts as NaN, so an element the kernels forget to write fails the test.
    monkeypatch.setenv("SNNFAST_POISON", "1")


def make_inputs(T, B, N, dtype=torch.float64, device="cpu", seed=0, param_shape=(None,)):
    """x, V and per-neuron beta, alpha, threshold, u0, scaled so that about a quarter of
    the neurons fire and the recurrent term moves the membrane by as much as the input."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, low=0.0, high=1.0):
        return (low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)

    x = (0.6 * torch.randn(T, B, N, generator=g, dtype=torch.float64) + 0.4).to(dtype)
    V = (1.5 / N**0.5 * torch.randn(N, N, generator=g, dtype=torch.float64)).to(dtype)
    return {
        "x": x.to(device),
        "V": V.to(device),
        "beta": rand(N, low=0.5, high=0.95).to(device),
        "alpha": rand(N, low=0.6, high=1.4).to(device),
        "threshold": rand(N, low=0.7, high=1.3).to(device),
        "u0": (0.5 * torch.randn(B, N, generator=g, dtype=torch.float64)).to(dtype).to(device),
    }


def leaves(inputs):
    """Copies of the tensor inputs that require grad, for two independent runs."""
    return {
        k: (v.detach().clone().requires_grad_(v.is_floating_point()) if isinstance(v, torch.Tensor) else v)
        for k, v in inputs.items()
    }


def run(fn, inputs, grad_seed=1, **options):
    """Outputs (spikes, u_T, h) and the gradients of every tensor input, pushing one fixed
    random grad_out through each output."""
    inputs = leaves(inputs)
    x, V = inputs["x"], inputs["V"]
    params = {k: v for k, v in inputs.items() if k not in ("x", "V")}
    spikes, u_last, membrane = fn(x, V, params.pop("beta"), **params, **options,
                                  return_state=True, return_membrane=True)
    g = torch.Generator().manual_seed(grad_seed)
    loss = 0
    for out in (spikes, u_last, membrane):
        loss = loss + (out * torch.randn(out.shape, generator=g, dtype=torch.float64).to(out)).sum()
    tensors = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    grads = torch.autograd.grad(loss, tensors)
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    return (spikes, u_last, membrane), dict(zip(names, grads))


def assert_match(inputs, atol=1e-10, rtol=1e-9, kernels=contextlib.nullcontext(), **options):
    with kernels:
        (s, u, h), grads = run(snnfast.recurrent_lif, inputs, **options)
    (s_ref, u_ref, h_ref), grads_ref = run(reference.recurrent_lif, inputs, **options)
    torch.testing.assert_close(s, s_ref, atol=0, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=atol, rtol=rtol)
    torch.testing.assert_close(u, u_ref, atol=atol, rtol=rtol)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], atol=atol, rtol=rtol, msg=lambda m: f"grad of {name}: {m}")
    return s


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("reset", RESETS)
def test_matches_reference_float64(reset, surrogate, detach_reset):
    inputs = make_inputs(T=6, B=3, N=5, seed=hash((reset, surrogate, detach_reset)) % 1000)
    spikes = assert_match(inputs, reset=reset, surrogate=surrogate, detach_reset=detach_reset)
    assert 0 < spikes.mean() < 1


def test_recurrence_changes_the_spikes():
    # Guards the test inputs: with V dropped the spikes differ, so the tests above see V.
    inputs = make_inputs(T=8, B=4, N=6)
    p = {k: inputs[k] for k in ("beta", "alpha", "threshold", "u0")}
    with_V = snnfast.recurrent_lif(inputs["x"], inputs["V"], p.pop("beta"), **p)
    p = {k: inputs[k] for k in ("beta", "alpha", "threshold", "u0")}
    without_V = snnfast.lif(inputs["x"], p.pop("beta"), **p)
    assert not torch.equal(with_V, without_V)


@pytest.mark.parametrize("shape", ["float", "0-d", "(1,)", "(N,)"])
@pytest.mark.parametrize("name", ["beta", "alpha", "threshold"])
def test_param_shapes(name, shape):
    inputs = make_inputs(T=5, B=3, N=4, seed=7)
    value = inputs[name]
    inputs[name] = {"float": float(value.mean()), "0-d": value.mean(), "(1,)": value.mean().reshape(1),
                    "(N,)": value}[shape]
    assert_match(inputs, reset="soft", surrogate="triangle")


@pytest.mark.parametrize("u0", ["none", "float", "(N,)", "(1, N)", "(B, N)"])
def test_initial_state(u0):
    inputs = make_inputs(T=5, B=3, N=4, seed=11)
    state = inputs.pop("u0")
    if u0 == "float":
        inputs["u0"] = 0.3
    elif u0 == "(N,)":
        inputs["u0"] = state[0]
    elif u0 == "(1, N)":
        inputs["u0"] = state[:1]
    elif u0 == "(B, N)":
        inputs["u0"] = state
    assert_match(inputs, reset="hard", v_reset=-0.2, surrogate="sigmoid")


@pytest.mark.parametrize("needs", [("x",), ("V",), ("alpha",), ("beta", "u0"), ("threshold", "V")])
def test_some_inputs_need_grad(needs):
    inputs = make_inputs(T=5, B=2, N=4, seed=3)
    results = []
    for fn in (snnfast.recurrent_lif, reference.recurrent_lif):
        t = {k: v.detach().clone().requires_grad_(k in needs) for k, v in inputs.items()}
        spikes, membrane = fn(t["x"], t["V"], t["beta"], alpha=t["alpha"], threshold=t["threshold"],
                              u0=t["u0"], surrogate="atan", return_membrane=True)
        g = torch.Generator().manual_seed(5)
        loss = (spikes * torch.randn(spikes.shape, generator=g, dtype=spikes.dtype)).sum() + membrane.pow(2).sum()
        results.append(torch.autograd.grad(loss, [t[k] for k in needs]))
    for name, a, b in zip(needs, *results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9, msg=lambda m: f"grad of {name}: {m}")


@pytest.mark.parametrize("return_state,return_membrane", [(False, False), (True, False), (False, True)])
def test_return_flags(return_state, return_membrane):
    inputs = make_inputs(T=4, B=2, N=3, seed=5)
    args = (inputs["x"], inputs["V"], inputs["beta"])
    out = snnfast.recurrent_lif(*args, return_state=return_state, return_membrane=return_membrane)
    ref = reference.recurrent_lif(*args, return_state=return_state, return_membrane=return_membrane)
    if not (return_state or return_membrane):
        assert isinstance(out, torch.Tensor)
        out, ref = (out,), (ref,)
    assert len(out) == 1 + return_state + return_membrane
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_gradient_from_final_state_only():
    # grad_spikes is None in the backward pass: only u_T is used.
    inputs = make_inputs(T=5, B=2, N=3, seed=9)
    grads = []
    for fn in (snnfast.recurrent_lif, reference.recurrent_lif):
        t = leaves(inputs)
        _, u_last = fn(t["x"], t["V"], t["beta"], alpha=t["alpha"], u0=t["u0"], return_state=True)
        grads.append(torch.autograd.grad(u_last.sum(), [t["x"], t["V"], t["alpha"], t["u0"]]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


def test_row_blocks_on_threads():
    # Large enough (T * N * B) that the CPU glue splits the batch into blocks of rows, one
    # time loop per thread; V requires grad there too.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inputs = make_inputs(T=64, B=16, N=64, seed=31)
        assert_match(inputs, reset="hard", surrogate="rectangle")
    finally:
        torch.set_num_threads(threads)


def test_no_time_steps():
    # u_T is u0; the reference's graph does not reach x or V at all.
    inputs = make_inputs(T=0, B=2, N=3)
    results = []
    for fn in (snnfast.recurrent_lif, reference.recurrent_lif):
        t = leaves(inputs)
        spikes, u_last = fn(t["x"], t["V"], t["beta"], u0=t["u0"], return_state=True)
        g = torch.randn(u_last.shape, generator=torch.Generator().manual_seed(2), dtype=u_last.dtype)
        results.append((spikes, u_last) + torch.autograd.grad((u_last * g).sum(), [t["u0"]]))
    assert results[0][0].shape == (0, 2, 3)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_float32():
    inputs = make_inputs(T=12, B=4, N=16, dtype=torch.float32, seed=13)
    assert_match(inputs, atol=1e-4, rtol=1e-4, reset="soft", surrogate="sigmoid")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype):
    # The op computes in float32; so does the reference for half inputs.
    inputs = make_inputs(T=6, B=3, N=8, dtype=dtype, seed=17)
    inputs["V"] = inputs["V"].float()
    for k in ("beta", "alpha", "threshold", "u0"):
        inputs[k] = inputs[k].float()
    spikes = assert_match(inputs, atol=1e-3, rtol=1e-3)
    assert spikes.dtype == dtype


def test_opcheck():
    inputs = leaves(make_inputs(T=4, B=2, N=3, seed=19))
    args = (inputs["x"], inputs["V"], inputs["beta"], inputs["alpha"], inputs["threshold"],
            inputs["u0"], "soft", 0.0, False, "atan", 2.0)
    torch.library.opcheck(torch.ops.snnfast.recurrent_lif.default, args)
    spikes, membrane, _ = torch.ops.snnfast.recurrent_lif(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    backward_args = (torch.randn_like(spikes), None, torch.randn(2, 3, dtype=torch.float64), spikes, membrane,
                     inputs["x"].detach(), *[a.detach() for a in args[1:6]], "soft", 0.0, False, "atan", 2.0,
                     [True] * 6)
    torch.library.opcheck(torch.ops.snnfast.recurrent_lif_backward.default, backward_args)


def test_compile_fullgraph():
    inputs = make_inputs(T=4, B=2, N=3, seed=23)
    fn = torch.compile(lambda x, V, beta: snnfast.recurrent_lif(x, V, beta, surrogate="triangle"),
                       fullgraph=True, backend="aot_eager")
    t = leaves(inputs)
    spikes = fn(t["x"], t["V"], t["beta"])
    grads = torch.autograd.grad(spikes.sum() + 0 * spikes.mean(), [t["x"], t["V"]], allow_unused=True)
    r = leaves(inputs)
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


@pytest.mark.parametrize("N", [5, 64, 200])
@pytest.mark.parametrize("reset,surrogate,detach_reset", [("hard", "rectangle", False), ("soft", "atan", True),
                                                           ("none", "sigmoid", False)])
def test_cuda_persistent_float64(cuda, N, reset, surrogate, detach_reset):
    # float64 V fits in shared memory up to N of about 160 on an A100 or H100; N = 200
    # takes the per-step path.
    inputs = make_inputs(T=7, B=3, N=N, device=cuda.type, seed=N)
    assert_match(inputs, kernels=cuda.kernels(), reset=reset, surrogate=surrogate,
                 detach_reset=detach_reset)


@pytest.mark.parametrize("N", [33, 200, 300])
def test_cuda_float32(cuda, N):
    # N = 33 and 200: persistent kernel; N = 300: V (360 KB) exceeds shared memory, per-step path.
    inputs = make_inputs(T=10, B=4, N=N, dtype=torch.float32, device=cuda.type, seed=N)
    with cuda.kernels():
        (s, u, h), grads = run(snnfast.recurrent_lif, inputs, surrogate="triangle")
    cpu = {k: v.cpu() for k, v in inputs.items()}
    (s_ref, u_ref, h_ref), grads_ref = run(snnfast.recurrent_lif, cpu, surrogate="triangle")
    # A sum in a different order may move h across the threshold; allow a few flips only.
    assert (s.cpu() != s_ref).float().mean() < 0.01
    if torch.equal(s.cpu(), s_ref):
        torch.testing.assert_close(h.cpu(), h_ref, atol=1e-4, rtol=1e-4)
        for name in grads:
            torch.testing.assert_close(grads[name].cpu(), grads_ref[name], atol=1e-3, rtol=1e-3)


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
    inputs["u0"] = inputs["u0"][:1]
    independent, synchronised = launches()
    assert_match(inputs, kernels=emulated.kernels(), reset=reset, surrogate=surrogate,
                 detach_reset=detach_reset)
    # Forward and backward: one launch of a persistent kernel each, or one step kernel per step.
    expected = (independent, synchronised + 2) if path == "persistent" else (independent + 2 * T, synchronised)
    assert launches() == expected


def test_cuda_opcheck(cuda):
    inputs = leaves(make_inputs(T=4, B=2, N=3, device=cuda.type, seed=29))
    args = (inputs["x"], inputs["V"], inputs["beta"], inputs["alpha"], inputs["threshold"],
            inputs["u0"], "hard", 0.0, False, "rectangle", 1.0)
    with cuda.kernels():
        torch.library.opcheck(torch.ops.snnfast.recurrent_lif.default, args)
