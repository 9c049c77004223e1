"""`snnfast study landscape`, `features` and `robustness` (the functional-roles paper's
Sections 4.2.3-4.3): their numbers on cases worked out by hand, and each study end to end on a
tiny synthetic stand-in for the event data (resumed without training again)."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from snnfast import data as datasets
from snnfast.models import SpikingMLP
from snnfast.train import builders, study, study_events, study_features, study_landscape, study_robustness
from snnfast.train.config import get_setup


class StandIn(Dataset):
    """A tiny N-MNIST-shaped event data set: [T, 2, 34, 34] event counts, class k lighting rows
    3k to 3k + 2 of polarity k % 2 at random steps, plus noise; 30 ms long."""

    def __init__(self, data_dir, split, *, time_window_ms=3.0, n=64, classes=3):
        generator = torch.Generator().manual_seed(0 if split == "train" else 1)
        T = max(1, int(30 // time_window_ms))
        self.samples = []
        for i in range(n):
            label = i % classes
            frames = (torch.rand(T, 2, 34, 34, generator=generator) < 0.01).float()
            frames[:, label % 2, 3 * label: 3 * label + 3, 5:29] += (
                torch.rand(T, 3, 24, generator=generator) < 0.5).float()
            self.samples.append((frames, label))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


@pytest.fixture
def stand_in(monkeypatch):
    """--data standin: the N-MNIST setup (with --quick's schedule) on StandIn."""
    monkeypatch.setitem(study_events.DATA, "standin", ("nmnist", {"dataset": "standin", "name": "standin"}))
    monkeypatch.setitem(datasets.DATASETS, "standin", StandIn)
    return "standin"


def sdt():
    return builders.build_loss(get_setup("nmnist"))


def tiny_snn():
    return SpikingMLP([8, 6, 3], beta=0.3, threshold=0.3)


# ---------------------------------------------------------------- landscape

def test_filter_normalisation_gives_each_filter_the_weights_norm():
    torch.manual_seed(0)
    model = tiny_snn()
    direction = study_landscape.random_direction(model, torch.Generator().manual_seed(1))
    for d, w in zip(direction, model.parameters()):
        if w.dim() == 1:
            assert (d == 0).all()  # biases are left out (Li et al.'s "biasbn")
        else:
            assert torch.allclose(d.norm(dim=1), w.detach().norm(dim=1), rtol=1e-5)
            assert not torch.allclose(d, w.detach())


def test_landscape_at_zero_displacement_is_the_trained_loss():
    torch.manual_seed(0)
    model = tiny_snn()
    x, labels = (torch.rand(5, 16, 8) < 0.5).float(), torch.arange(16) % 3
    data, loss_fn = [(x[:, :8], labels[:8]), (x[:, 8:], labels[8:])], sdt()
    before = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(2)
    directions = [study_landscape.random_direction(model, generator) for _ in range(2)]
    loss, error = study_landscape.surface(model, loss_fn, data, directions, [-1.0, 0.0, 1.0], progress=False)
    with torch.no_grad():
        output = model(x)
    assert loss[1, 1] == pytest.approx(float(loss_fn(output, labels)), rel=1e-6)
    assert error[1, 1] == pytest.approx(100 * float((output.mean(0).argmax(-1) != labels).double().mean()))
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), before))  # weights restored
    assert not torch.allclose(loss[0, 0], loss[1, 1])  # a displacement does change the loss


def test_flatness_numbers_by_hand():
    coords = [-1.0, -0.5, 0.0, 0.5, 1.0]
    c = torch.tensor(coords, dtype=torch.float64)
    b, a = torch.meshgrid(c, c, indexing="ij")
    loss = 1 + a ** 2 + b ** 2  # L0 = 1
    flat = study_landscape.flatness(loss, 10 * (a.abs() + b.abs()), coords, radius=0.5)
    # Within r = 0.5: (+-0.5, 0) and (0, +-0.5), each 0.25 above the centre; error 10 * 0.5 = 5.
    assert flat["rise_r"] == pytest.approx(0.25) and flat["error_rise_r"] == pytest.approx(5.0)
    # The box |a|, |b| <= 0.5 peaks at its corners: 0.5 above L0; 100 * 0.5 / (1 + 1) = 25.
    assert flat["sharpness"] == pytest.approx(25.0)
    assert flat["loss_0"] == 1.0


def test_landscape_grid_needs_a_centre():
    assert study_landscape.grid_coords(5, 1.0) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="odd"):
        study_landscape.grid_coords(4, 1.0)


# ---------------------------------------------------------------- features

def test_silhouette_of_two_separated_clusters_by_hand():
    # Cosine distances: within a cluster 1 - 1/sqrt(2), to the other cluster 2 and 1 + 1/sqrt(2).
    features = [[1, 0], [1, 1], [-1, 0], [-1, -1]]
    a = 1 - 1 / math.sqrt(2)
    b = (2 + 1 + 1 / math.sqrt(2)) / 2
    assert study_features.silhouette(features, [0, 0, 1, 1]) == pytest.approx(1 - a / b)
    # Classes mixed up: each sample's partner is opposite (a = 2), the other class holds its copy
    # and the opposite (b = (0 + 2) / 2 = 1): s = (1 - 2) / 2 for every sample.
    assert study_features.silhouette([[1, 0], [-1, 0], [1, 0], [-1, 0]], [0, 0, 1, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="two classes"):
        study_features.silhouette(features, [0, 0, 0, 0])


def test_hidden_rates_are_the_last_hidden_layers_mean_output():
    torch.manual_seed(0)
    x = (torch.rand(6, 4, 8) < 0.5).float()
    feed_forward, recurrent = tiny_snn(), SpikingMLP([8, 6, 3], beta=0.3, threshold=0.3, recurrent=True)
    with torch.no_grad():
        assert torch.equal(study_features.hidden_rates(feed_forward, x), feed_forward.layers[1](feed_forward.layers[0](x)).mean(0))
        assert torch.equal(study_features.hidden_rates(recurrent, x), recurrent.layers[0](x).mean(0))
        lstm = study_events.RNNClassifier("lstm", 8, 5, 3)
        assert torch.equal(study_features.hidden_rates(lstm, x), lstm.rnn(x)[0].mean(0))


# ---------------------------------------------------------------- robustness

class Counter(nn.Module):
    """Class 0 scores the events of features 0 and 1, class 1 those of features 2 and 3."""

    def forward(self, x):
        return torch.stack([x[..., :2].sum(-1), x[..., 2:].sum(-1)], dim=-1)


def test_g2s_flips_only_what_keeps_an_event_stream():
    x = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 4)
    grad = torch.tensor([1.0, 1.0, -1.0, -1.0]).view(1, 1, 4)
    delta = study_robustness.g2s(grad, x, 1.0, 0.0, torch.Generator().manual_seed(0))
    # An event can be added where there is none (element 0) and removed where there is one (3).
    assert delta.view(-1).tolist() == [1.0, 0.0, 0.0, -1.0]


def test_one_iteration_of_the_attack_by_hand():
    # Label 0, events at features 0, 1, 3: scores 2 and 1. The gradient of the loss is negative on
    # features 0, 1 (removing their events helps) and positive on 2, 3, with equal magnitudes, so
    # G2S picks every allowed element: 0 and 1 lose their events, 2 gains one (3 has one already).
    x, labels = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(1, 1, 4), torch.tensor([0])
    result = study_robustness.attack(Counter(), sdt(), x, labels, iterations=5)
    assert result["x_adv"].view(-1).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert result["perturbation"].tolist() == [3.0] and result["iterations"].tolist() == [1]
    assert result["wrong_after"].tolist() == [True] and result["wrong_before"].tolist() == [False]


def test_zero_budget_attack_changes_nothing():
    torch.manual_seed(0)
    model, x, labels = tiny_snn(), (torch.rand(5, 6, 8) < 0.5).float(), torch.arange(6) % 3
    for budget in (dict(iterations=0), dict(iterations=4, step=0.0, turnover=0.0)):
        result = study_robustness.attack(model, sdt(), x, labels, **budget)
        assert torch.equal(result["x_adv"], x)
        assert (result["perturbation"] == 0).all()
        assert torch.equal(result["wrong_after"], result["wrong_before"])


def test_eventdrop_p0_is_the_identity_and_p1_drops_everything():
    x = torch.randint(0, 4, (20, 2, 34, 34)).float()
    assert torch.equal(study_robustness.event_drop(x, 0.0), x)
    assert (study_robustness.event_drop(x, 1.0) == 0).all()
    half = study_robustness.event_drop(x, 0.5, torch.Generator().manual_seed(0))
    assert (half <= x).all() and abs(float(half.sum() / x.sum()) - 0.5) < 0.01  # 70,000 events
    with pytest.raises(ValueError, match="drop probability"):
        study_robustness.event_drop(x, 1.5)


# ---------------------------------------------------------------- end to end

@pytest.mark.parametrize("name, module, options", [
    ("landscape", study_landscape, dict(points=3, span=1.0, surface_samples=8, radius=1.0)),
    ("features", study_features, dict(tsne_samples=12)),
    ("robustness", study_robustness, dict(attack_samples=4, iterations=2, drop_curve=(0.5,))),
])
def test_study_runs_end_to_end_and_resumes(tmp_path, stand_in, name, module, options):
    names = ("baseline", "recurrence", "lstm") if name == "landscape" else ("baseline", "recurrence")
    kwargs = dict(data=stand_in, data_dir=tmp_path, quick=True, epochs=1, out=tmp_path / "out",
                  models=tmp_path / "models", progress=False, **options)
    rows = module.run(names, **kwargs)
    assert [r["network"] for r in rows] == list(names)
    for file in ("results.md", "results.csv"):
        assert (tmp_path / "out" / file).is_file()
    assert list((tmp_path / "out").glob("*.png"))
    for n in names:
        assert (tmp_path / "models" / n / "checkpoint.pt").is_file()
    again = module.run(names, **kwargs)  # from the kept networks and analyses
    assert [{k: str(v) for k, v in r.items()} for r in again] == [{k: str(v) for k, v in r.items()} for r in rows]
    assert name in study.PAPER_STUDIES


def test_cli_flags_are_checked():
    with pytest.raises(SystemExit, match="odd"):
        study_landscape.main(["--points", "4"])
    with pytest.raises(SystemExit, match="radius"):
        study_landscape.main(["--points", "5", "--radius", "0.2"])
    with pytest.raises(SystemExit, match="drop-p"):
        study_robustness.main(["--drop-p", "2"])
    with pytest.raises(SystemExit, match="tsne-samples"):
        study_features.main(["--tsne-samples", "1"])
