"""``snnfast study landscape``: the loss landscapes of the functional-roles paper (Section 4.2.3,
Figure 5): the vanilla SNN, the SNN without leakage, with recurrence, without leakage and with
recurrence (Figure 5(b)) and an LSTM, each trained with the N-MNIST setup (Tables 4 and 5) on
the event data, then its training loss on a plane through the trained weights theta:
L(theta + a d1 + b d2) on a grid of (a, b), d1 and d2 random Gaussian directions with filter
normalisation (Li et al., 2018, "Visualizing the Loss Landscape of Neural Nets"): each filter
of a direction (a row of a weight matrix: the weights into one neuron or gate) is rescaled to
the norm of the same filter of theta, and 1-D parameters (biases) are left out of the
directions (Li et al.'s "biasbn" setting), so a = 1 moves every filter by its own size.

Flatness, so that the ordering can be read without the picture (smaller: flatter):
- ``rise_r``: the mean increase of the loss over the grid points within radius r of the
  centre (a^2 + b^2 <= r^2), r = --radius (0.5);
- ``sharpness``: Keskar et al.'s epsilon-sharpness restricted to the plane, 100 (max L - L0) /
  (1 + L0) over the grid points in the box |a|, |b| <= r;
- ``error_rise_r``: the mean increase of the training error (%) within radius r: the losses
  of the SNNs (cross-entropy of spike rates in [0, 1]) and of the LSTM (of unbounded logits)
  live on different scales, the error does not.

Results: results.md, results.csv (one row per model), landscape.png (the contours, Figure 5)
and slices.png (the loss along a, b = 0); surface_NAME.pt per model, so the plots redraw
without evaluating again.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import builders, study_digits, study_events, study_variants

NAMES = ("baseline", "no_leak", "recurrence", "no_leak_recurrence", "lstm")
# The paper's reading of Figure 5 (vanilla SNN, SNN without leakage and with recurrence,
# LSTM): flattest first. It gives no number.
PAPER_ORDER = ("baseline", "no_leak_recurrence", "lstm")
# The grid (points per axis over [-span, span]^2, Li et al.'s span) and the training samples
# the loss is measured on. --quick: 49 points on 64 samples, as the LSTM's forward pass is ten
# times the SNNs' here.
QUICK = dict(points=7, span=1.0, surface_samples=64)
FULL = dict(points=25, span=1.0, surface_samples=1024)


def random_direction(model: nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """A Gaussian direction with filter normalisation (Li et al.), one tensor per parameter:
    each filter d_i (index i along the first dimension) becomes d_i ||theta_i|| / ||d_i||;
    parameters of one dimension (biases) get zeros."""
    direction = []
    for weight in model.parameters():
        d = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
        if weight.dim() <= 1:
            d.zero_()
        else:
            filters, rows = d.flatten(1), weight.detach().flatten(1)
            filters.mul_(rows.norm(dim=1, keepdim=True) / (filters.norm(dim=1, keepdim=True) + 1e-10))
        direction.append(d)
    return direction


def surface(model: nn.Module, loss_fn, data: list, directions, coords: list[float], progress: bool = True):
    """Loss and error (%) of ``model`` on ``data`` (a list of batches) at theta + a d1 + b d2
    for every (a, b) in coords x coords: two ``[len(coords), len(coords)]`` tensors indexed
    [b, a]. The weights are restored afterwards."""
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    d1, d2 = directions
    n = len(coords)
    loss, error = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    model.eval()
    bar = tqdm(total=n * n, desc="surface", leave=False, disable=not progress)
    try:
        with torch.no_grad():
            for j, b in enumerate(coords):
                for i, a in enumerate(coords):
                    for p, w, u, v in zip(params, theta, d1, d2):
                        p.copy_(w).add_(u, alpha=a).add_(v, alpha=b)
                    loss[j, i], error[j, i] = evaluate(model, loss_fn, data)
                    bar.update()
    finally:
        with torch.no_grad():
            for p, w in zip(params, theta):
                p.copy_(w)
        bar.close()
    return loss, error


def evaluate(model: nn.Module, loss_fn, data: list) -> tuple[float, float]:
    """Mean loss over the samples of ``data`` and error (%), classified by the time-averaged output."""
    total, wrong, count = 0.0, 0, 0
    for x, labels in data:
        output = model(x)
        total += float(loss_fn(output, labels)) * labels.numel()
        wrong += int((output.mean(0).argmax(-1) != labels).sum())
        count += labels.numel()
    return total / count, 100 * wrong / count


def grid_coords(points: int, span: float) -> list[float]:
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be odd and at least 3 (the grid's centre is the trained weights), got {points}")
    return [span * (2 * k / (points - 1) - 1) for k in range(points)]


def flatness(loss: torch.Tensor, error: torch.Tensor, coords: list[float], radius: float) -> dict:
    """The flatness numbers of one surface (module docstring)."""
    c = torch.tensor(coords, dtype=torch.float64)
    b, a = torch.meshgrid(c, c, indexing="ij")
    centre = len(coords) // 2
    loss0, error0 = float(loss[centre, centre]), float(error[centre, centre])
    disc = (a ** 2 + b ** 2 <= radius ** 2 + 1e-12) & ~((a == 0) & (b == 0))
    box = (a.abs() <= radius + 1e-12) & (b.abs() <= radius + 1e-12)
    if not disc.any():
        raise ValueError(f"no grid point within radius {radius} besides the centre: use more points or a larger radius")
    return {
        "loss_0": loss0, "error_0": error0,
        "rise_r": float((loss[disc] - loss0).mean()),
        "sharpness": float(100 * (loss[box].max() - loss0) / (1 + loss0)),
        "error_rise_r": float((error[disc] - error0).mean()),
        "loss_edge": float(loss[~box].mean()) if (~box).any() else math.nan,
    }


def run(names, *, data: str = "ndigits", data_dir=None, quick: bool = False, epochs: int | None = None, out: Path,
        models: Path, points: int, span: float = 1.0, surface_samples: int, radius: float = 0.5, seed: int = 0,
        samples: int | None = None, progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    setup = study_events.setup_for(data, quick, epochs)
    runs = study_variants.train_all(names, setup, data_dir=data_dir, models=models, seed=seed, samples=samples,
                                    progress=progress)
    coords = grid_coords(points, span)
    train_set = study_events.load_split(setup, data_dir, "train", samples)
    subset = torch.utils.data.Subset(train_set, range(min(surface_samples, len(train_set))))
    batches = list(study_variants.batches(subset, 64))
    loss_fn = builders.build_loss(setup)
    rows, surfaces = [], {}
    for name in names:
        path = out / f"surface_{name}.pt"
        settings = {"coords": coords, "samples": len(subset), "seed": seed, "epochs": len(runs[name].history)}
        saved = torch.load(path, weights_only=True) if path.is_file() else None
        if saved is not None and saved["settings"] == settings:
            loss, error = saved["loss"], saved["error"]
        else:
            if progress:
                print(f"surface of {study_variants.NETWORKS[name].label}: {points} x {points} points on "
                      f"{len(subset)} training samples", flush=True)
            generator = torch.Generator().manual_seed(seed)
            model = runs[name].model
            directions = [random_direction(model, generator) for _ in range(2)]
            loss, error = surface(model, loss_fn, batches, directions, coords, progress)
            torch.save({"settings": settings, "loss": loss, "error": error}, path)
        surfaces[name] = (loss, error)
        rows.append({"network": name, "label": study_variants.NETWORKS[name].label, "test_acc": runs[name].mean_acc,
                     **flatness(loss, error, coords, radius)})
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(table(rows, radius) + "\n\n" + ordering_summary(rows) + "\n")
    plot(surfaces, coords, out)
    return rows


def table(rows: list[dict], radius: float) -> str:
    lines = [f"| network | test acc. | training loss at theta | mean loss rise, r <= {radius} | "
             f"sharpness (box {radius}) | mean error rise (points), r <= {radius} | paper (Figure 5) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    paper = {"baseline": "flattest", "no_leak_recurrence": "second", "lstm": "steepest"}
    for r in rows:
        lines.append(f"| {r['label']} | {r['test_acc']:.1f} % | {r['loss_0']:.3f} | {r['rise_r']:.3f} | "
                     f"{r['sharpness']:.1f} | {r['error_rise_r']:.1f} | {paper.get(r['network'], 'not shown')} |")
    return "\n".join(lines)


def ordering_summary(rows: list[dict]) -> str:
    """Whether Figure 5's ordering (vanilla SNN flattest, then the SNN without leakage and with
    recurrence, LSTM steepest) holds by each flatness number."""
    by = {r["network"]: r for r in rows}
    if not all(name in by for name in PAPER_ORDER):
        return "Figure 5's ordering: not checked (needs " + ", ".join(n for n in PAPER_ORDER if n not in by) + ")"
    lines = []
    for key, what in (("rise_r", "mean loss rise"), ("sharpness", "sharpness"), ("error_rise_r", "mean error rise")):
        order = sorted(by, key=lambda n: by[n][key])
        paper = [n for n in order if n in PAPER_ORDER]
        holds = tuple(paper) == PAPER_ORDER
        lines.append(f"By {what}, flattest first: {' < '.join(order)}; Figure 5's ordering "
                     f"({' < '.join(PAPER_ORDER)}) {'holds' if holds else 'does NOT hold'}.")
    return "\n".join(lines)


def plot(surfaces: dict, coords: list[float], out: Path) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    names = list(surfaces)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        loss = surfaces[name][0].numpy()
        contours = ax.contour(coords, coords, loss, levels=12, cmap="viridis")
        ax.clabel(contours, fontsize=6, fmt="%.2f")
        ax.plot([0], [0], "r+")
        ax.set_title(study_variants.short(name), fontsize=9)
        ax.set_xlabel("a (direction 1)")
    axes[0][0].set_ylabel("b (direction 2)")
    fig.suptitle("Training loss around the trained weights, filter-normalised directions (Figure 5)")
    fig.tight_layout()
    fig.savefig(out / "landscape.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    centre = len(coords) // 2
    for name in names:
        loss = surfaces[name][0]
        ax.plot(coords, (loss[centre] - loss[centre, centre]).numpy(), marker="o", ms=3,
                label=study_variants.short(name))
    ax.set_xlabel("a (direction 1, b = 0)")
    ax.set_ylabel("loss - loss at the trained weights")
    ax.legend(fontsize=8)
    ax.set_title("Loss along direction 1")
    fig.tight_layout()
    fig.savefig(out / "slices.png", dpi=120)
    plt.close(fig)
    return True


def parser():
    p = study_variants.parser("landscape", __doc__, NAMES)
    p.add_argument("--points", type=int, default=None,
                   help=f"grid points per axis, odd (default {QUICK['points']} with --quick, {FULL['points']})")
    p.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span]^2 (default 1, as Li et al.)")
    p.add_argument("--radius", type=float, default=0.5, help="radius r of the flatness numbers (default 0.5)")
    p.add_argument("--surface-samples", type=int, default=None,
                   help=f"training samples the loss is measured on (default {QUICK['surface_samples']} with "
                        f"--quick, {FULL['surface_samples']})")
    return p


def main(argv=None) -> list[dict]:
    args = parser().parse_args(argv)
    grid = dict(QUICK if args.quick else FULL, span=args.span)
    for key in ("points", "surface_samples"):
        if getattr(args, key) is not None:
            grid[key] = getattr(args, key)
    try:  # the grid and the radius are checked before any training
        spacing = 2 * grid["span"] / (len(grid_coords(grid["points"], grid["span"])) - 1)
    except ValueError as error:
        raise SystemExit(f"--points: {error}") from None
    if not 0 < spacing <= args.radius:
        raise SystemExit(f"--radius {args.radius} holds no grid point besides the centre (spacing {spacing:g}): "
                         "use a larger --radius or more --points")
    if grid["surface_samples"] < 1:
        raise SystemExit(f"--surface-samples must be positive, got {grid['surface_samples']}")
    out, models = study_variants.resolve(args, "landscape")
    rows = study_events.run_from_args("landscape", partial(run, radius=args.radius, **grid), args.networks, args,
                                      out, models)
    print(f"\nLoss landscapes on {args.data}: {grid['points']} x {grid['points']} points in [-{grid['span']:g}, "
          f"{grid['span']:g}]^2 along two filter-normalised directions, training loss on {grid['surface_samples']} "
          "samples; smaller numbers: flatter\n")
    print(table(rows, args.radius))
    print("\n" + ordering_summary(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, landscape.png, slices.png); networks in {models}/")
    return rows
