"""The networks and losses behind `snnfast train` and `snnfast study xor`: each setup builds
its network with the variant asked for, the XOR readout and loss follow DH-SNN's task, and
the study trains, resumes and checks Table 6's ordering."""
import csv

import pytest
import torch

import snnfast
from snnfast.data import xor
from snnfast.nn import DALIF, LIF, LeakyReadout, RecurrentLIF
from snnfast.train import SETUPS, builders, cli, get_setup, study


def neurons(model, kind=None):
    kind = kind or (LIF, DALIF)
    return [m for m in model.modules() if isinstance(m, kind)]


# Input shapes [B, *F] per setup, kept small where the network allows (T = 2, B = 1).
INPUTS = {
    "xor": (20,), "shd": (700,), "ssc": (700,), "nmnist": (2, 34, 34),
    "dvs_gesture": (2, 128, 128), "mnist": (1, 28, 28), "cifar10": (3, 32, 32),
}


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_every_setup_builds_its_network(name):
    setup = SETUPS[name]
    torch.manual_seed(0)
    model = builders.build_model(setup)
    x = (torch.rand(2, 1, *INPUTS[name]) < 0.3).float()
    out = model(x)
    assert out.shape == (2, 1, setup.num_classes)
    layers = neurons(model)
    assert layers and all(n.threshold == setup.threshold for n in layers)
    assert all(n.surrogate.width == setup.surrogate_width for n in layers)
    if setup.beta == "learnable":
        assert all(n.leak == "learnable" for n in layers)
    else:
        assert all(n.leak == "normal" and n.beta == setup.beta for n in layers)


@pytest.mark.parametrize("changes, check", [
    ({"beta": 1.0}, lambda n: n.leak == "none" and n.beta == 1.0),
    ({"beta": 0.0}, lambda n: n.leak == "complete" and n.beta == 0.0),
    ({"beta": 0.7}, lambda n: n.leak == "normal" and n.beta == 0.7),
    ({"reset": "soft"}, lambda n: n.reset_mode == "soft"),
    ({"reset": "none"}, lambda n: n.reset_mode == "none"),
    ({"imp": True}, lambda n: n.imp),
])
def test_variant_flags_reach_every_neuron(changes, check):
    model = builders.build_model(get_setup("shd", **changes))
    model(torch.rand(3, 2, 700))
    assert all(check(n) for n in neurons(model))


def test_recurrent_and_dalif_variants():
    model = builders.build_model(get_setup("shd", recurrent=True))
    assert len(neurons(model, RecurrentLIF)) == 1  # the hidden layer; the output stays feed-forward
    model = builders.build_model(get_setup("mnist", dalif=True))
    assert neurons(model) and all(isinstance(n, DALIF) for n in neurons(model))
    model = builders.build_model(get_setup("xor", dalif=True, imp=True))
    assert isinstance(model.layers[1], DALIF) and model.layers[1].imp
    assert model(torch.rand(4, 2, 20)).shape == (4, 2, 2)
    with pytest.raises(ValueError, match="cifar10"):
        builders.build_model(get_setup("cifar10", recurrent=True))
    with pytest.raises(ValueError, match="--dalif and --recurrent"):
        builders.build_model(get_setup("mnist", dalif=True, recurrent=True))


def test_detach_recurrent_reaches_the_recurrent_layer_and_cuts_its_gradient():
    setups = {detach: get_setup("xor", recurrent=True, detach_recurrent=detach) for detach in (False, True)}
    models = {}
    for detach, setup in setups.items():
        torch.manual_seed(0)
        models[detach] = builders.build_model(setup)
        layer, = neurons(models[detach], RecurrentLIF)
        assert layer.detach_recurrent is detach
    x = (torch.rand(30, 3, 20, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    grads, spikes = {}, {}
    for detach, model in models.items():
        layer, = neurons(model, RecurrentLIF)
        spikes[detach] = layer(x).detach()
        model.zero_grad()
        model(x).square().sum().backward()
        grads[detach] = (layer.linear.weight.grad.clone(), layer.V.grad.clone())
    # The same weights and forward pass (the layer fires, so the recurrent path carries
    # gradient); V learns either way, but the cut changes what reaches W through o_{t-1}.
    assert torch.equal(spikes[False], spikes[True]) and spikes[True].sum() > 0
    assert grads[True][1].abs().sum() > 0
    assert not torch.allclose(grads[False][0], grads[True][0])
    assert not torch.allclose(grads[False][1], grads[True][1])
    with pytest.raises(ValueError, match="--detach-recurrent needs --recurrent"):
        builders.build_model(get_setup("xor", detach_recurrent=True))
    with pytest.raises(ValueError, match="detach_recurrent=True needs recurrent=True"):
        snnfast.models.SpikingMLP([4, 3, 2], detach_recurrent=True)


def test_detach_recurrent_from_the_command_line(tmp_path, monkeypatch):
    built = []
    real = builders.build_model
    monkeypatch.setattr(builders, "build_model", lambda setup, args=None: built.append(setup) or real(setup))
    cli.main(["xor", "--recurrent", "--detach-recurrent", "--epochs", "1", "--batch-size", "4",
              "--out", str(tmp_path / "train"), "--no-progress"])
    assert built[-1].recurrent and built[-1].detach_recurrent
    with pytest.raises(SystemExit):
        cli.main(["xor", "--detach-recurrent", "--out", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()
    # The XOR study runs it as a variant of its own, outside Table 6's default five.
    assert "recurrence_detached" not in [v.name for v in study.VARIANTS]
    study.main(["xor", "--epochs", "1", "--batches", "1", "--variants", "recurrence_detached",
                "--out", str(tmp_path / "study"), "--no-progress"])
    assert built[-1].detach_recurrent and built[-1].dataset == "xor"
    assert "detach_recurrent" in (tmp_path / "study" / "results.md").read_text()


def test_xor_network_is_20_16_2_with_a_leaky_readout():
    torch.manual_seed(0)
    model = builders.build_model(SETUPS["xor"])
    hidden, = neurons(model)
    assert hidden.leak == "learnable" and hidden.beta.shape == (16,)
    # Decays drawn per neuron, not one value: hidden logits in U(4, 6) for the first half
    # (slow) and U(1, 2.5) for the second (fast), readout logits in U(0, 4).
    raw = hidden.beta_raw.detach()
    slow, fast = raw[:8], raw[8:]
    assert slow.min() >= 4 and slow.max() <= 6 and slow.std() > 0.1
    assert fast.min() >= 1 and fast.max() <= 2.5 and fast.std() > 0.1
    readout = model.layers[-1]
    assert isinstance(readout, LeakyReadout)
    assert readout.beta_raw.min() >= 0 and readout.beta_raw.max() <= 4
    spikes, labels = xor.generate(4, torch.Generator().manual_seed(0))
    assert model(spikes).shape == (xor.STEPS, 4, 2)


def test_xor_weight_gain_only_where_the_input_is_scaled_by_one_minus_beta():
    built = {}
    for name, changes in (("baseline", {}), ("no_leak", {"beta": 1.0}), ("complete", {"beta": 0.0})):
        torch.manual_seed(0)
        built[name] = builders.build_model(get_setup("xor", **changes)).layers[0].weight.detach()
    torch.testing.assert_close(built["baseline"], 10 * built["no_leak"])
    torch.testing.assert_close(built["complete"], built["no_leak"])


def test_leaky_readout_matches_its_equation_and_gradients():
    torch.manual_seed(1)
    readout = LeakyReadout(3).double()
    with torch.no_grad():
        readout.beta_raw.copy_(torch.randn(3, dtype=torch.float64))
    x = torch.randn(7, 4, 3, dtype=torch.float64, requires_grad=True)
    out = readout(x)
    beta = torch.sigmoid(readout.beta_raw)
    u, expected = torch.zeros(4, 3, dtype=torch.float64), []
    for t in range(7):
        u = beta * u + (1 - beta) * x[t]
        expected.append(u)
    expected = torch.stack(expected)
    torch.testing.assert_close(out, expected)
    grad_out = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, readout.beta_raw), grad_out)
    want = torch.autograd.grad(expected, (x, readout.beta_raw), grad_out)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    with pytest.raises(ValueError, match=r"\[T, B, 3\]"):
        readout(torch.randn(7, 4, 2))
    with pytest.raises(ValueError, match="beta_init"):
        LeakyReadout(2, beta_init=1.0)


def test_xor_loss_counts_only_the_readout_steps():
    loss = builders.build_loss(SETUPS["xor"])
    output = torch.randn(xor.STEPS, 5, 2)
    labels = torch.randint(0, 2, (5,))
    changed = output.clone()
    changed[:xor.READOUT_STEPS.start] = torch.randn_like(changed[:xor.READOUT_STEPS.start])
    assert torch.equal(loss(output, labels), loss(changed, labels))
    expected = torch.nn.functional.cross_entropy(output[xor.READOUT_STEPS].flatten(0, 1),
                                                 labels.repeat(xor.STEPS - xor.READOUT_STEPS.start))
    torch.testing.assert_close(loss(output, labels), expected)


@pytest.mark.parametrize("name, cls", [("sdt", snnfast.losses.SDT), ("tet", snnfast.losses.TET),
                                       ("tets", snnfast.losses.TETS), ("lts", snnfast.losses.LTS)])
def test_loss_flag_picks_the_loss(name, cls):
    assert isinstance(builders.build_loss(get_setup("shd", loss=name)), cls)


def test_cli_trains_xor_with_the_real_network(tmp_path):
    history = cli.main(["xor", "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path),
                        "--no-progress", "--recurrent", "--reset", "none"])
    assert len(history) == 1 and 0.0 <= history[0]["test_acc"] <= 1.0
    assert (tmp_path / "checkpoint.pt").is_file()


def test_study_trains_resumes_and_writes_results(tmp_path, capsys):
    variants = [v for v in study.VARIANTS if v.name in ("baseline", "recurrence")]
    rows = study.run(variants, epochs=1, lr_step=1, out=tmp_path, batches=2, progress=False)
    assert [r["variant"] for r in rows] == ["baseline", "recurrence"]
    first = {r["variant"]: r["final"] for r in rows}
    # A second call with more epochs continues from the checkpoints: epoch 1 is not redone.
    rows = study.run(variants, epochs=2, lr_step=1, out=tmp_path, batches=2, progress=False)
    assert all(r["epochs"] == 2 for r in rows)
    with open(tmp_path / "baseline" / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert [row["epoch"] for row in log] == ["1", "2"]
    assert float(log[0]["test_acc"]) * 100 == pytest.approx(first["baseline"])
    with open(tmp_path / "results.csv", newline="") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == ["baseline", "recurrence"]
    assert "With recurrence" in (tmp_path / "results.md").read_text()
    # The epoch kept is the one with the lowest training loss; the per-step accuracies
    # re-evaluate its saved weights on its test set, so their mean is its logged accuracy.
    for r in rows:
        with open(tmp_path / r["variant"] / "log.csv", newline="") as f:
            log = list(csv.DictReader(f))
        losses = [float(row["train_loss"]) for row in log]
        assert r["kept_epoch"] == 1 + losses.index(min(losses))
        assert r["kept"] == pytest.approx(100 * float(log[r["kept_epoch"] - 1]["test_acc"]), abs=1e-3)
        per_step = [r[f"step_{t}"] for t in range(xor.READOUT_STEPS.start, xor.STEPS)]
        assert len(per_step) == 9 and all(0 <= a <= 100 for a in per_step)
        assert sum(per_step) / len(per_step) == pytest.approx(r["kept"], abs=1e-3)
    assert "| step 191 |" in (tmp_path / "results.md").read_text()


def test_study_command(tmp_path, capsys):
    study.main(["xor", "--epochs", "1", "--batches", "1", "--variants", "no_leak",
                "--out", str(tmp_path), "--no-progress"])
    printed = capsys.readouterr().out
    assert "Without leakage (beta = 1)" in printed and "50.5 %" in printed
    assert (tmp_path / "no_leak" / "checkpoint.pt").is_file()
    with pytest.raises(SystemExit):
        study.main(["xor", "--epochs", "0"])
    # A bad argument is refused before --fresh deletes anything.
    with pytest.raises(SystemExit):
        study.main(["xor", "--batches", "0", "--fresh", "--out", str(tmp_path)])
    assert (tmp_path / "no_leak" / "checkpoint.pt").is_file()


def row(name, final):
    v = {v.name: v for v in study.VARIANTS}[name]
    return {"variant": name, "label": v.label, "paper": v.paper, "kept": final, "kept_epoch": 1,
            "final": final, "best": final, "epochs": 1, "minutes": 0.0}


def test_ordering_check():
    kept = [row("baseline", 70), row("no_leak", 52), row("complete_leak", 50),
            row("no_reset", 95), row("recurrence", 97)]
    assert study.check_ordering(kept) == []
    broken = [row("baseline", 80), row("no_leak", 65), row("complete_leak", 50),
              row("no_reset", 75), row("recurrence", 85)]
    problems = " ".join(study.check_ordering(broken))
    assert "no_leak" in problems and "no_reset" in problems and "(< 90 %)" in problems
    assert "complete_leak" not in problems
