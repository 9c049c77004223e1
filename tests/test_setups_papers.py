"""The IMP and DA-LIF papers' setups for `snnfast train`: each builds its real network, neuron and
loss and trains one step on synthetic input of the real shape [T, 1, C, H, W] with its own
optimizer; the optimizer, parameter groups, schedule and resume follow the setup."""
import math

import pytest
import torch

from snnfast import losses
from snnfast.nn import DALIF, LIF
from snnfast.train import builders, cli, get_setup, paper_setups
from snnfast.train.config import PAPER_SETUPS, SETUPS
from snnfast.train.paper_setups import PaperSetup, WarmupCosine
from snnfast.train.trainer import Trainer


def neurons(model):
    return [m for m in model.modules() if isinstance(m, (LIF, DALIF))]


@pytest.mark.parametrize("name", sorted(PAPER_SETUPS))
def test_every_paper_setup_trains_one_step_at_its_real_shape(name):
    setup = PAPER_SETUPS[name]
    torch.manual_seed(0)
    model = builders.build_model(setup)
    loss_fn = builders.build_loss(setup)
    optimizer = paper_setups.build_optimizer(setup, model)
    layers = neurons(model)
    assert layers and all(n.threshold == setup.threshold and n.reset_mode == setup.reset for n in layers)
    if setup.neuron == "dalif":
        assert all(isinstance(n, DALIF) for n in layers)
        assert all(n.alpha.item() == pytest.approx(math.tanh(1.0)) for n in layers)
    else:  # IF: LIF with beta = 1
        assert all(n.leak == "none" and n.beta == 1.0 for n in layers)
    assert all(n.imp == setup.imp for n in layers)
    if setup.imp:  # U(0.4, 0.6) per neuron, created at the real [C, H, W]
        u0 = torch.cat([n.u0.detach().flatten() for n in layers])
        assert 0.4 <= u0.min() and u0.max() <= 0.6 and u0.std() > 0.03
    loss_cls = {"sdt": losses.SDT, "tet": losses.TET, "tets": losses.TETS, "lts": losses.LTS}[setup.loss]
    assert isinstance(loss_fn, loss_cls)
    if setup.loss == "tets":
        assert loss_fn.epsilon == 0.01

    shape = (setup.T, 1, *setup.input_shape)
    # Event frames are spike counts; static images come standardised, repeated at every step.
    x = ((torch.rand(shape) < 0.3).float() if "encoding" not in setup.data
         else torch.randn(shape[1:]).expand(shape).contiguous())
    labels = torch.tensor([setup.num_classes - 1])
    before = [p.detach().clone() for p in model.parameters()]
    output = model(x)
    assert output.shape == (setup.T, 1, setup.num_classes)
    loss = loss_fn(output, labels)
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_paper_setups_are_not_in_the_functional_roles_registry():
    assert not set(PAPER_SETUPS) & set(SETUPS)
    assert isinstance(get_setup("imp_sew18_imagenet", imp=True), PaperSetup)
    with pytest.raises(ValueError, match="imp_cifar10dvs_48_t10"):
        get_setup("nope")


def test_the_papers_hyper_parameters():
    s = PAPER_SETUPS["imp_cifar10dvs_128_t16"]
    assert (s.optimizer, s.lr, s.weight_decay, s.grad_clip, s.warmup_epochs, s.epochs, s.T) == \
        ("adamw", 1e-3, 0.06, 1.0, 30, 200, 16)
    s = PAPER_SETUPS["imp_cifar10dvs_48_t8"]
    assert (s.optimizer, s.lr, s.momentum, s.weight_decay, s.T, s.input_shape) == ("sgd", 0.1, 0.9, 5e-4, 8, (2, 48, 48))
    s = PAPER_SETUPS["imp_sew34_imagenet"]
    assert (s.optimizer, s.lr, s.weight_decay, s.epochs, s.T, s.loss, s.imp) == ("sgd", 0.05, 0.0, 320, 4, "lts", False)
    s = PAPER_SETUPS["dalif_resnet20_cifar100"]
    assert (s.neuron, s.optimizer, s.lr, s.momentum, s.T, s.epochs) == ("dalif", "sgd", 0.1, 0.9, 2, 1000)
    for s in PAPER_SETUPS.values():
        assert s.paper and s.source and s.notes


def test_parameter_groups_keep_weight_decay_off_bn_biases_imp_and_decays():
    setup = get_setup("imp_cifar10dvs_48_t10")
    model = builders.build_model(setup)
    decay, no_decay = paper_setups.parameter_groups(model, 5e-4)
    ids = {id(p) for p in decay["params"]}
    layers = neurons(model)
    assert all(id(n.u0) not in ids for n in layers)
    assert all(id(m.weight) in ids for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert all(id(m.weight) not in ids for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (5e-4, 0.0)
    dalif = builders.build_model(get_setup("dalif_resnet20_cifar10"))
    ids = {id(p) for p in paper_setups.parameter_groups(dalif, 5e-4)[0]["params"]}
    assert all(id(n.alpha_raw) not in ids and id(n.beta_raw) not in ids for n in neurons(dalif))


def test_warmup_cosine_by_hand():
    f = WarmupCosine(epochs=10, warmup=2, start=0.1, floor=0.0)
    # Warm-up: 0.1, then halfway 0.55; from epoch 2 a cosine over 8 epochs: 1 at 2, 0.5 at 6, 0 at 10.
    assert [f(0), f(1), f(2), f(6), f(10)] == pytest.approx([0.1, 0.55, 1.0, 0.5, 0.0])
    assert WarmupCosine(4, 0, 1e-4, 0.01)(4) == pytest.approx(0.01)


def test_grad_clip_bounds_the_step():
    setup = get_setup("imp_ncaltech101_128_t16")
    model = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    optimizer = paper_setups.build_optimizer(setup.replace(optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=1.0),
                                             model)
    model.weight.grad = torch.tensor([[30.0, 40.0, 0.0]])  # norm 50, clipped to 1.0
    optimizer.step()
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[-0.6, -0.8, 0.0]]))


def test_unknown_optimizer_and_schedule_raise():
    setup = get_setup("dalif_resnet20_cifar10")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        paper_setups.build_optimizer(setup.replace(optimizer="lamb"), model)
    with pytest.raises(ValueError, match="schedule must be one of"):
        paper_setups.build_scheduler(setup.replace(schedule="step"), torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="--recurrent"):
        builders.build_model(setup.replace(recurrent=True))


def _tiny_run(tmp_path, epochs, resume):
    setup = get_setup("dalif_resnet20_cifar10", epochs=4, lr=0.05).replace(warmup_epochs=1)
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.rand(2, 4, 3, 8, 8, generator=generator), torch.randint(0, 10, (4,), generator=generator))
               for _ in range(2)]

    def model():
        return torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Linear(192, 10))

    return Trainer(model, batches, losses.TET(), epochs=epochs, lr=setup.lr, lr_step=1, lr_gamma=1.0,
                   out_dir=tmp_path, seed=0, resume=resume, progress=False, tensorboard=False,
                   **paper_setups.trainer_options(setup))


def test_trainer_uses_the_setups_optimizer_and_resumes_exactly(tmp_path):
    whole = _tiny_run(tmp_path / "whole", 4, resume=False)
    assert isinstance(whole.optimizer, torch.optim.SGD) and isinstance(whole.scheduler, torch.optim.lr_scheduler.LambdaLR)
    history = whole.fit()
    # lr per epoch: warm-up start 1e-4 * 0.05, then the cosine from 0.05 over 3 epochs.
    expected = [0.05 * 1e-4] + [0.05 * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in range(3)]
    assert [r["lr"] for r in history] == pytest.approx(expected)
    _tiny_run(tmp_path / "split", 2, resume=False).fit()
    resumed = _tiny_run(tmp_path / "split", 4, resume=True)
    assert isinstance(resumed.optimizer, torch.optim.SGD) and resumed.start_epoch == 2
    rest = resumed.fit()
    assert [r["train_loss"] for r in rest] == [r["train_loss"] for r in history]
    for a, b in zip(whole.module.parameters(), resumed.module.parameters()):
        assert torch.equal(a, b)


def test_cli_lists_and_picks_the_paper_setups():
    assert "imp_cifar10dvs_48_t10" in cli.parser().parse_args(["imp_cifar10dvs_48_t10"]).setup
    assert paper_setups.trainer_options(SETUPS["mnist"]) == {}
    assert set(paper_setups.trainer_options(PAPER_SETUPS["imp_sew18_cifar10"])) == {"optimizer", "scheduler"}


def test_snnfast_train_runs_a_paper_setup_end_to_end(tmp_path):
    import numpy as np
    from test_data_papers import write_cifar100

    write_cifar100(tmp_path / "data", np.random.default_rng(0), n_train=4, n_test=2)
    argv = ["imp_sew18_cifar100", "--imp", "--T", "2", "--batch-size", "2", "--epochs", "1", "--data-dir",
            str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--no-progress"]
    history = cli.main(argv)
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    # The warm-up's first lr (1e-4 of 0.1): the setup's schedule, not Adam + StepLR's lr.
    assert history[0]["lr"] == pytest.approx(0.1 * 1e-4)
    resumed = cli.main(argv[:argv.index("--epochs") + 1] + ["2"] + argv[argv.index("--epochs") + 2:] + ["--resume"])
    assert len(resumed) == 2 and resumed[0] == history[0]
    assert resumed[1]["lr"] == pytest.approx(0.1 * (1e-4 + (1 - 1e-4) / 5))
