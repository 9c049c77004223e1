"""The functional-roles studies on event data (snnfast study leakage | firing | generalization):
their measurements against hand-computed cases, and tiny end-to-end runs on N-Digits."""
import math

import pytest
import torch

from snnfast import data
from snnfast.nn import LIF
from snnfast.train import study, study_events, study_firing, study_generalization, study_leakage
from snnfast.train.metrics import class_accuracy


class Constant(torch.utils.data.Dataset):
    """Samples of one constant input current per neuron: ``[T, N]``."""

    def __init__(self, currents, T, n=3):
        self.x = torch.tensor(currents, dtype=torch.float32).expand(T, -1).clone()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return self.x, 0


@pytest.mark.parametrize("reset, want", [("hard", [3 / 12, 0.0, 1.0]), ("none", [9 / 12, 0.0, 1.0])])
def test_spike_rates_of_a_hand_computed_neuron(reset, want):
    # beta = 1, threshold 1: a current of 0.25 charges 0.25 a step. With the hard reset it fires
    # at steps 4, 8, 12 (3 of 12); without reset at every step from the 4th on (9 of 12).
    model = torch.nn.Sequential(LIF(leak="none", threshold=1.0, reset=reset))
    rates = study_events.spike_rates(model, Constant([0.25, 0.0, 2.0], T=12), batch_size=2)
    assert len(rates) == 1
    torch.testing.assert_close(rates[0], torch.tensor(want, dtype=torch.float64))


def test_firing_histogram_and_claim_check():
    rates = torch.tensor([0.0, 0.04, 0.05, 0.5, 0.99, 1.0])
    counts = study_firing.histogram(rates, bins=20)
    assert counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[19] == 2 and sum(counts) == 6
    rows = [{"network": "baseline", "hidden_mean": 0.02}, {"network": "no_reset", "hidden_mean": 0.05},
            {"network": "no_leak", "hidden_mean": 0.09}, {"network": "no_leak_no_reset", "hidden_mean": 0.07}]
    lines = study_firing.check(rows)
    assert lines[0].endswith(": holds") and lines[1].endswith("does NOT hold") and len(lines) == 2
    assert {n.name for n in study_firing.NETWORKS} >= {n.name for n in study_events.SNN_VARIANTS}


def test_generalization_evaluation_equals_a_direct_evaluation():
    torch.manual_seed(0)
    setup = study_events.setup_for("ndigits", quick=True)
    model = study_events.build_network(setup, study_events.BASELINE)
    with torch.no_grad():
        model.layers[0].weight.mul_(20)  # some hidden spikes, so that the outputs differ
    accuracies = study_generalization.evaluate_windows(model, setup, None, windows=(5.0, 10.0), samples=24)
    test = data.NDigits(None, "test", time_window_ms=5.0)
    correct = 0
    for i in range(24):
        frames, label = test[i]
        frames = frames[:60]  # 300 ms of 5 ms frames
        frames = torch.cat([frames, frames.new_zeros(60 - len(frames), *frames.shape[1:])])
        with torch.no_grad():
            correct += int(class_accuracy(model(frames.unsqueeze(1)), torch.tensor([label]))[0])
    assert accuracies[5.0] == pytest.approx(100 * correct / 24)
    frames, _ = study_events.load_split(setup, None, "test", 2, window_ms=1.0)[0]
    assert frames.shape == (300, 2, 34, 34)
    hand = {1.0: 50.0, 2.0: 100.0, 3.0: 100.0, 5.0: 100.0, 10.0: 50.0}
    assert study_generalization.retained(hand) == pytest.approx(75.0)


def test_rnn_baselines_have_the_snns_size():
    setup = study_events.setup_for("ndigits", quick=False)
    for network in study_events.RNN_BASELINES:
        model = study_events.build_network(setup, network)
        assert model.rnn.input_size == 2312 and model.rnn.hidden_size == 512 and model.fc.out_features == 10
        assert model(torch.zeros(7, 2, 2, 34, 34)).shape == (7, 2, 10)
    recurrent = study_events.build_network(setup, dict((n.name, n) for n in study_events.SNN_VARIANTS)["recurrence"])
    assert type(recurrent.layers[0]).__name__ == "RecurrentLIF"


def test_leakage_reuses_the_named_variants_and_quotes_table7():
    assert study_leakage.BETAS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert study_leakage.network_for(0.0, 0.3).name == "complete_leak"
    assert study_leakage.network_for(1.0, 0.3).name == "no_leak"
    assert study_leakage.network_for(0.3, 0.3) is study_events.BASELINE
    assert study_leakage.network_for(0.5, 0.3).changes == {"beta": 0.5}
    assert study_leakage.paper_accuracy("ndigits", 0.3) == 94.75  # N-MNIST's baseline (Table 6)
    assert study_leakage.paper_accuracy("shd", 1.0) == 13.69 and study_leakage.paper_accuracy("xor", 0.5) is None


def test_leakage_run_end_to_end_reports_its_networks_accuracy(tmp_path):
    rows = study_leakage.run((0.0, 0.5), data="ndigits", quick=True, epochs=1, out=tmp_path / "out",
                             models=tmp_path / "models", samples=64, progress=False)
    assert [r["network"] for r in rows] == ["complete_leak", "beta_0.5"]
    assert {"results.md", "results.csv", "leakage.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    # The reported number is the accuracy of the network saved in --models, re-evaluated here.
    setup = study_events.setup_for("ndigits", quick=True, epochs=1)
    network = study_leakage.network_for(0.5, setup.beta)
    model = study_events.build_network(setup, network)
    state = torch.load(tmp_path / "models" / "beta_0.5" / "checkpoint.pt", weights_only=False)
    model.load_state_dict(state["model"])
    test = study_events.load_split(setup, None, "test", 64)
    assert rows[1]["accuracy"] == pytest.approx(study_events.accuracy(model, test))
    again = study_leakage.run((0.5,), data="ndigits", quick=True, epochs=1, out=tmp_path / "out",
                              models=tmp_path / "models", samples=64, progress=False)
    assert again[0]["accuracy"] == rows[1]["accuracy"]  # resumed: nothing retrained


def test_leakage_on_xor_trains_the_xor_network(tmp_path):
    rows = study_leakage.run((1.0,), data="xor", quick=True, epochs=1, out=tmp_path, models=tmp_path / "m",
                             progress=False)
    assert rows[0]["paper"] == 50.5 and rows[0]["epochs"] == 1 and 0 <= rows[0]["accuracy"] <= 100
    assert (tmp_path / "xor-models" / "beta_1.0" / "checkpoint.pt").is_file()


def test_studies_through_the_command_line_share_their_networks(tmp_path, capsys):
    common = ["--quick", "--epochs", "1", "--samples", "64", "--models", str(tmp_path / "models"), "--no-progress"]
    rows = study.main(["generalization", "--networks", "baseline", "no_reset", "--out", str(tmp_path / "gen"), *common])
    shown = capsys.readouterr().out
    assert "Table 8" in shown and "90.8" in shown  # the paper's baseline at 1 ms beside ours
    assert {"results.md", "results.csv", "generalization.png"} <= {p.name for p in (tmp_path / "gen").iterdir()}
    assert all(math.isfinite(r["1ms"]) for r in rows)
    stamp = (tmp_path / "models" / "baseline" / "checkpoint.pt").stat().st_mtime_ns
    firing = study.main(["firing", "--networks", "baseline", "no_reset", "--out", str(tmp_path / "fire"), *common])
    assert (tmp_path / "models" / "baseline" / "checkpoint.pt").stat().st_mtime_ns == stamp  # reused
    assert {r["network"] for r in firing} == {"baseline", "no_reset"}
    assert "Figure 3's claim" in capsys.readouterr().out
    assert (tmp_path / "fire" / "firing.png").is_file() and (tmp_path / "fire" / "rates.csv").is_file()
    with pytest.raises(SystemExit, match="other settings"):
        study.main(["firing", "--networks", "baseline", "--out", str(tmp_path / "fire"), *common,
                    "--seed", "1"])  # another seed: the shared network in --models does not match
    with pytest.raises(SystemExit):
        study.main(["generalization", "--data", "shd"])  # Table 8 is N-MNIST only
