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
