"""`snnfast bench imp`: its contenders run the protocol's neuron, its overheads are the ratios
of the times it measured, and its command line checks what it is given."""
import pytest
import torch

from snnfast import reference
from snnfast.utils import benchmark, benchmark_imp
from snnfast.surrogate import Sigmoid

CPU = torch.device("cpu")


def _run(contender, x, grad):
    out = contender.run(x)
    out.backward(grad)
    grads = (x.grad.clone(), None if contender.u0 is None else contender.u0.grad.clone())
    x.grad = None
    return out.detach(), grads


@pytest.mark.parametrize("imp", [False, True])
def test_contenders_run_the_protocols_if_neuron(imp):
    """snnfast and SpikingJelly, with and without IMP, equal the reference IF neuron (beta 1,
    soft reset, detach_reset, sigmoid(4) surrogate, u0 the contender's own) in spikes and in
    the gradients of x and u0."""
    N = 96
    generator = torch.Generator().manual_seed(3)
    x = (torch.randn(6, 1, N, generator=generator) * 0.7 + 0.5).requires_grad_(True)
    grad = torch.randn(6, 1, N, generator=generator)
    found = [c for c in benchmark_imp.contenders(N, CPU) if c.imp == imp]
    assert [c.name for c in found] == ["snnfast.lif (fused)", "spikingjelly 2.0 IFNode"]
    for c in found:
        u0 = None if c.u0 is None else c.u0.detach().clone().requires_grad_(True)
        want = reference.lif(x, 1.0, threshold=1.0, reset="soft", detach_reset=True, u0=u0,
                             surrogate=Sigmoid(4.0))
        want.backward(grad)
        want_x = x.grad.clone()
        x.grad = None
        got, (got_x, got_u0) = _run(c, x, grad)
        assert 0 < got.mean() < 1, "the input should make some neurons fire, not all"
        assert torch.equal(got, want.detach()), c.name
        torch.testing.assert_close(got_x, want_x, rtol=1e-5, atol=1e-6, msg=c.name)
        if imp:
            assert ((c.u0 >= benchmark_imp.IMP_LOW) & (c.u0 <= benchmark_imp.IMP_HIGH)).all()
            torch.testing.assert_close(got_u0, u0.grad, rtol=1e-5, atol=1e-6, msg=c.name)


def _row(contender, imp, fwd, fwd_bwd, rounds=()):
    return benchmark_imp.Row(8, 2**16, contender, imp, fwd, fwd * 2, fwd_bwd, fwd_bwd * 3,
                             forward_backward_s=list(rounds))


def test_overheads_are_ratios_of_the_times_with_and_without_imp():
    rows = [_row("a", False, 2.0, 10.0), _row("a", True, 2.5, 10.1),
            _row("b", False, 4.0, 20.0), _row("b", True, 3.0, 19.0)]
    lines = benchmark_imp.overheads(rows)
    assert [(d["contender"], d["T"], d["N"]) for d in lines] == [("a", 8, 2**16), ("b", 8, 2**16)]
    a, b = lines
    assert a["fwd_overhead_pct"] == pytest.approx(25.0)
    assert a["fwd_bwd_overhead_pct"] == pytest.approx(1.0)
    assert b["fwd_bwd_overhead_pct"] == pytest.approx(-5.0)
    assert a["traffic_share_pct"] == pytest.approx(100 * 3 / 49)  # 3 N over 6 T N + N at T = 8
    assert "fwd_bwd_paired_pct" not in a  # no rounds recorded
    text = benchmark_imp.table(lines)
    assert "| 8 | 2^16 | a | 2.000 | 2.500 | +25.0 % | 10.000 | 10.100 | +1.0 % | - | 6.1 % |" in text


def test_the_paired_overhead_is_the_median_of_the_rounds_ratios():
    # The third round is slowed for both calls: the best times say -10 %, the rounds +1 %.
    rows = [_row("a", False, 1.0, 1.0, rounds=[1.0, 1.0, 3.0, 1.0, 1.0]),
            _row("a", True, 1.0, 0.9, rounds=[1.01, 1.01, 3.03, 0.9, 1.2])]
    (line,) = benchmark_imp.overheads(rows)
    assert line["fwd_bwd_overhead_pct"] == pytest.approx(-10.0)
    assert line["fwd_bwd_paired_pct"] == pytest.approx(1.0)
    assert line["fwd_bwd_paired_low_pct"] == pytest.approx(1.0)
    assert line["fwd_bwd_paired_high_pct"] == pytest.approx(1.0)
    assert "+1.0 % (+1.0 to +1.0)" in benchmark_imp.table([line])


def test_interleaved_times_runs_every_call_once_a_round_in_turn():
    order = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    times = benchmark.interleaved_times(calls, CPU, rounds=3, warmup=1, min_sample_s=0.0)
    assert [len(t) for t in times] == [3, 3]
    assert order == ["a", "b"] + ["a", "b"] * 3  # one timed warm-up each, then the rounds


def test_quick_report_has_a_row_per_shape_and_contender(tmp_path):
    rows, lines, text = benchmark_imp.report((2,), (2**8,), CPU, rounds=1, allocator="test",
                                             progress=False)
    assert len(rows) == 4 and len(lines) == 2
    assert "overhead" in text and "CPU memory: test" in text
    path = tmp_path / "imp.png"
    benchmark_imp.plot(lines, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_checks_its_arguments(capsys):
    with pytest.raises(SystemExit):
        benchmark_imp.main(["--rounds", "0"])
    assert "--rounds must be at least 1" in capsys.readouterr().err
