"""The IMP and DA-LIF papers' studies: `snnfast study imp-patterns`, `losses` and
`dalif-ablation`. Numbers checked on cases worked out by hand from docs/neuron.md's equations
(h_t = beta u_{t-1} + alpha x_t, spike when h_t >= threshold, soft reset u_t = h_t - threshold)."""
import csv

import numpy as np
import pytest
import torch

from snnfast.train import study, study_imp


def bits(name: str) -> torch.Tensor:
    return torch.tensor([float(c) for c in name], dtype=torch.float64)


def index(name: str) -> int:
    return int(name, 2)


@pytest.mark.parametrize("pattern, weight, imp, expected", [
    # IMP = 0, threshold 1, one spike of weight 1 at step 1: h_1 = 0 + 1 = 1 >= 1 fires, u_1 = 0;
    # h_2 = h_3 = h_4 = 0: silent.
    ("1000", 1.0, 0.0, "1000"),
    # The same spike at step 3: h_1 = h_2 = 0, h_3 = 1 fires, h_4 = 0.
    ("0010", 1.0, 0.0, "0010"),
    # Weight 0.5, spikes at steps 1, 2, 4: h = 0.5, 1.0 (fires, u = 0), 0.0, 0.5: one spike at step 2.
    ("1101", 0.5, 0.0, "0100"),
    # IMP = 0.25, weight 0.5, spikes at steps 2, 3: h = 0.25, 0.75, 1.25 (fires, u = 0.25), 0.25.
    ("0110", 0.5, 0.25, "0010"),
    # IMP = 1 and no input: h_1 = 1 fires at once, u_1 = 0, then silent.
    ("0000", 0.0, 1.0, "1000"),
    # A negative IMP delays: IMP = -0.5, weight 0.75 at every step: h = 0.25, 1.0 (fires, u = 0), 0.75, 1.5
    # (fires, u = 0.5).
    ("1111", 0.75, -0.5, "0101"),
])
def test_if_neuron_output_pattern_by_hand(pattern, weight, imp, expected):
    spikes = study_imp.if_neuron_outputs((weight * bits(pattern)).unsqueeze(0), torch.tensor([imp], dtype=torch.float64))
    assert "".join(str(int(b)) for b in spikes[0].tolist()) == expected


def test_patterns_are_numbered_step_one_first():
    p = study_imp.patterns(4)
    assert p.shape == (16, 4)
    assert p[index("1000")].tolist() == [1, 0, 0, 0] and p[index("0001")].tolist() == [0, 0, 0, 1]
    assert study_imp.pattern_index(p).tolist() == list(range(16))


def test_mapping_by_hand():
    # With IMP = 0 and one weight w = 1 every input spike fires at once: each input maps to itself.
    assert (study_imp.mapping((0.0,), (1.0,)) == np.eye(16, dtype=bool)).all()
    # w = 0 and w = 1 with IMP = 0: every input maps to itself and to silence.
    grid = study_imp.mapping((0.0,), (0.0, 1.0))
    expected = np.eye(16, dtype=bool)
    expected[0, :] = True
    assert (grid == expected).all()
    # No input and IMP in {0, 1}: silence, or one spike at step 1.
    grid = study_imp.mapping((0.0, 1.0), (0.0,))
    assert grid[:, 0].nonzero()[0].tolist() == [index("0000"), index("1000")]
    # Rows are outputs, columns inputs: with IMP = 0 a single input spike at step 4 gives 0000
    # (w < 1) or 0001 (w = 1).
    panel = study_imp.PANELS[0]
    grid = study_imp.mapping(panel.imps, panel.weights)
    assert grid[:, index("0001")].nonzero()[0].tolist() == [index("0000"), index("0001")]


def test_mapping_panels_grow_with_the_imp():
    rows, grids = study_imp.summarize()
    white = {r["panel"]: r["white_squares"] for r in rows}
    # The authors' figures (etc/pattern mapping in their repository) have 54 and 108 white squares.
    assert white["imp0"] == 54 and white["learnable"] == 108
    assert white["imp0"] < white["imp025"] < white["learnable"]
    # Everything reachable with IMP = 0 stays reachable when the IMP is free (it includes 0).
    assert (grids["learnable"] >= grids["imp0"]).all()


def test_observation1_constant_input_shifts_with_the_imp():
    trains = study_imp.observation1_trains()
    # Input 1/8 from IMP k/8: h_t = (k + t) / 8 first reaches 1 at step 8 - k, then every 8 steps.
    for k, train in enumerate(trains):
        assert (train.nonzero().flatten() + 1).tolist() == [8 - k, 16 - k]
    rows = study_imp.observation1_rows()
    assert all(r["imp_free"] > r["imp_0"] for r in rows)


def test_imp_patterns_command(tmp_path, capsys):
    study.main(["imp-patterns", "--out", str(tmp_path)])
    for name in ("results.md", "results.csv", "mapping.png", "observation1.png", "mapping_imp0.csv"):
        assert (tmp_path / name).is_file()
    with open(tmp_path / "results.csv") as f:
        assert [r["panel"] for r in csv.DictReader(f)] == ["imp0", "imp025", "learnable"]
    with open(tmp_path / "mapping_imp0.csv") as f:
        grid = np.array([row[1:] for row in list(csv.reader(f))[1:]], dtype=int)
    assert grid.sum() == 54
    assert "(c) Learnable IMP" in capsys.readouterr().out


# --- losses and dalif-ablation: the digits studies -------------------------------------------

from snnfast import losses  # noqa: E402
from snnfast.data import Digits  # noqa: E402
from snnfast.nn import DALIF  # noqa: E402
from snnfast.train import study_dalif, study_digits, study_losses  # noqa: E402


class FixedOutput(torch.nn.Module):
    """Returns a given [T, B, C] output whatever the input (one batch)."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, x):
        return self.output


def test_step_accuracies_by_hand():
    # Two samples (labels 0, 1), three steps, two classes. Sample 0 is right at every step;
    # sample 1 only at step 2. Time-averaged, sample 1 has (1 + 0 + 0.5) / 3 = 0.5 for class 0
    # and (0 + 3 + 0) / 3 = 1 for class 1: right; its last step picks class 0: wrong.
    output = torch.tensor([[[2.0, 0.0], [1.0, 0.0]],
                           [[1.0, 0.0], [0.0, 3.0]],
                           [[2.0, 0.0], [0.5, 0.0]]])
    labels = torch.tensor([0, 1])
    per_step, mean, last = study_digits.step_accuracies(FixedOutput(output), [(None, labels)])
    assert per_step == [50.0, 100.0, 50.0]
    assert (mean, last) == (100.0, 50.0)
    assert study_digits.LastStepAccuracy()(output, labels) == (1, 2)


def test_digits_dataset():
    train, test = Digits(None, "train"), Digits(None, "test")
    assert (len(train), len(test)) == (1347, 450)
    image, label = test[0]
    assert image.shape == (1, 8, 8) and 0.0 <= image.min() and image.max() <= 1.0 and 0 <= label < 10
    assert set(train.targets) == set(range(10))
    with pytest.raises(ValueError, match="split"):
        Digits(None, "val")


def test_losses_agree_at_one_step():
    # With T = 1, SDT, TET and LTS are all CE(y_1, target): the same runs, bit for bit.
    y, target = torch.randn(1, 5, 10), torch.randint(0, 10, (5,))
    values = [loss(y, target) for loss in (losses.SDT(), losses.TET(), losses.LTS())]
    assert values[0] == values[1] == values[2]


def test_losses_study_trains_resumes_and_writes_results(tmp_path, capsys):
    argv = ["losses", "--quick", "--T", "1", "2", "--losses", "sdt", "lts", "--epochs", "1", "--samples", "70",
            "--out", str(tmp_path), "--no-progress"]
    rows = study.main(argv)
    assert [(r["T"], r["loss"]) for r in rows] == [(1, "sdt"), (1, "lts"), (2, "sdt"), (2, "lts")]
    # T = 1: SDT and LTS are the same loss and the same classifier, so the same run.
    assert rows[0]["reported"] == rows[1]["reported"] and rows[0]["step_1"] == rows[1]["step_1"]
    for r in rows:
        assert 0 <= r["reported"] <= 100 and r["epochs"] == 1
    with open(tmp_path / "T2_sdt" / "log.csv") as f:
        assert float(next(csv.DictReader(f))["train_acc"]) >= 0  # one batch trained (NaN without)
        assert r["reported"] == (r["last_step"] if r["loss"] == "lts" else r["mean_output"])
    for name in ("results.md", "results.csv", "convergence.png", "per_step.png"):
        assert (tmp_path / name).is_file()
    # Again with one more epoch: every run resumes from its checkpoint (epoch 1 unchanged).
    again = study.main(argv[:argv.index("--epochs") + 1] + ["2"] + argv[argv.index("--epochs") + 2:])
    assert [r["epochs"] for r in again] == [2, 2, 2, 2]
    assert all(a["epoch_1"] == r["epoch_1"] for a, r in zip(again, rows))
    assert "paper (SEW-ResNet-18, T = 4)" in capsys.readouterr().out


def test_losses_study_flags(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir"):
        study.main(["losses", "--data", "cifar10"])
    with pytest.raises(SystemExit, match="--epochs"):
        study.main(["losses", "--epochs", "0"])
    with pytest.raises(SystemExit, match="--T"):
        study.main(["losses", "--T", "0"])
    with pytest.raises(ValueError, match="do not fill one batch"):
        study.main(["losses", "--quick", "--samples", "10", "--T", "1", "--out", str(tmp_path)])


def test_dalif_variants_learn_only_their_decays(tmp_path):
    rows, summary = study.main(["dalif-ablation", "--quick", "--T", "1", "2", "--seeds", "0", "--epochs", "1",
                                "--samples", "70", "--out", str(tmp_path), "--no-progress"])
    start = float(torch.tanh(torch.tensor(1.0)))
    by = {(r["T"], r["variant"]): r for r in rows}
    for T in (1, 2):
        for layer in (1, 2, 3):
            assert by[(T, "lif")][f"alpha_{layer}"] == pytest.approx(start)
            assert by[(T, "lif")][f"beta_{layer}"] == pytest.approx(start)
            assert by[(T, "alpha")][f"beta_{layer}"] == pytest.approx(start)
            assert by[(T, "beta")][f"alpha_{layer}"] == pytest.approx(start)
            assert by[(T, "alpha")][f"alpha_{layer}"] != pytest.approx(start)
    # At T = 1 beta multiplies u_0 = 0: it gets no gradient, stays at its start, and the
    # beta-only run is the baseline's, bit for bit. At T = 2 it learns.
    assert all(by[(1, "beta")][f"beta_{n}"] == pytest.approx(start) for n in (1, 2, 3))
    assert by[(1, "beta")]["accuracy"] == by[(1, "lif")]["accuracy"]
    assert any(by[(2, "beta")][f"beta_{n}"] != pytest.approx(start) for n in (1, 2, 3))
    lif, = [s for s in summary if s["T"] == 1 and s["variant"] == "lif"]
    assert lif["runs"] == 1 and lif["std"] == 0.0
    for name in ("results.md", "results.csv", "accuracy.png", "decays.png"):
        assert (tmp_path / name).is_file()


def test_dalif_summary_by_hand():
    rows = [{"T": 2, "variant": v, "accuracy": a} for v, a in
            (("lif", 90.0), ("lif", 92.0), ("both", 93.0), ("both", 95.0))]
    summary = study_dalif.summarize(rows, study_dalif.VARIANTS)
    lif, both = summary
    assert (lif["mean"], both["mean"], both["gain"]) == (91.0, 94.0, 3.0)
    assert both["std"] == pytest.approx(2 ** 0.5) and both["paper"] == 1.28


def test_dalif_neuron_frozen_decays_get_no_update():
    model = study_dalif.make_model(study_dalif.VARIANTS[1], 1, 10, (4, 4, 4))()
    layers = [m for m in model.modules() if isinstance(m, DALIF)]
    assert len(layers) == 3
    assert all(m.alpha_raw.requires_grad and not m.beta_raw.requires_grad for m in layers)
