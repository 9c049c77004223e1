"""snnfast/utils/benchmark.py as the toolkit of every benchmark: the timer, the machine line and
the neuron named in the headers."""
import pytest
import torch

import snnfast
from snnfast.utils import benchmark

CPU = torch.device("cpu")


def test_interleaved_times_runs_every_call_in_turn_and_settles():
    order = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    times = benchmark.interleaved_times(calls, CPU, rounds=3, warmup=1, min_sample_s=0.0, settle=1)
    assert [len(t) for t in times] == [3, 3] and all(s >= 0 for t in times for s in t)
    # One calibration call each, then per round: a's settle call and its sample, then b's.
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 3


def test_a_sample_repeats_a_short_call():
    count = [0]
    # min_sample_s far above the call's microseconds: with 5 ms, one call descheduled for 5 ms
    # on a loaded machine (two test suites on two cores) made a sample of one call.
    (times,) = benchmark.interleaved_times([lambda: count.__setitem__(0, count[0] + 1)], CPU, rounds=2,
                                           warmup=1, min_sample_s=0.5)
    assert len(times) == 2 and count[0] > 3  # far more calls than samples


def test_paired_ratio_takes_the_median_of_the_rounds_ratios():
    # Round 3 is slowed for both calls by the same burst: its ratio is 1.1 like the others,
    # while the ratio of the two medians would not be.
    a = [1.1, 2.2, 11.0, 1.1, 3.3]
    b = [1.0, 2.0, 10.0, 1.0, 1.0]
    median, low, high = benchmark.paired_ratio(a, b)
    assert abs(median - 1.1) < 1e-12 and abs(low - 1.1) < 1e-12 and abs(high - 1.1) < 1e-12
    assert benchmark.paired_ratio([2.0], [1.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="equal, non-empty"):
        benchmark.paired_ratio([1.0, 2.0], [1.0])


def test_machine_names_the_cpu_and_versions():
    line = benchmark.machine(CPU)
    assert f"{torch.get_num_threads()} threads" in line and f"torch {torch.__version__}" in line
    assert benchmark.cpu_model() in line


def test_the_benchmark_neuron_is_what_snnfast_lif_runs():
    x = torch.randn(6, 2, 5, dtype=torch.float64) + 0.8
    spikes = snnfast.lif(x, **benchmark.NEURON)
    want = snnfast.reference.lif(x, 0.5, alpha=0.5, threshold=1.0, surrogate=snnfast.surrogate.Sigmoid(4.0))
    assert torch.equal(spikes, want)
    assert benchmark.describe_neuron(**benchmark.NEURON) == (
        "LIF, beta = 0.5, alpha = 0.5, threshold 1, hard reset to 0, sigmoid surrogate (sharpness 4)")


def test_describe_neuron_names_every_setting():
    text = benchmark.describe_neuron(1.0, threshold=0.5, reset="soft", detach_reset=True,
                                     surrogate=snnfast.surrogate.Triangle(2.0), recurrent=True)
    assert text == ("recurrent LIF, beta = 1, alpha = 1, threshold 0.5, soft reset, detach_reset, "
                    "triangle surrogate (width 2)")


def test_every_bench_header_names_the_neuron():
    header = benchmark.report([(4, 2, 8)], CPU, repeats=1, progress=False)
    assert f"Neuron: {benchmark.describe_neuron(**benchmark.NEURON)}" in header
    assert f"Machine: {benchmark.machine(CPU)}" in header
