"""``snnfast study features``: the feature space of each variant (the functional-roles paper,
Section 4.2.4, Table 9 and Figure 6): the spike rates of the last hidden layer (the 512
neurons of Input(2312)-(512)-(10), averaged over time) on the test set, their silhouette
coefficient (Rousseeuw, 1987) with the cosine distance in those 512 dimensions, labels as
clusters, and a t-SNE of them to two dimensions (scikit-learn, cosine metric, PCA start).

The silhouette of a sample is (b - a) / max(a, b), a its mean distance to the other samples
of its class, b the smallest mean distance to the samples of another class; the coefficient
is the mean over the samples (-1 to 1, higher: classes further apart). A sample whose hidden
layer is silent has a zero vector, at cosine distance 1 from every other (scikit-learn's
convention); the table counts them.

Results: results.md, results.csv (one row per variant) and tsne.png (Figure 6); features.pt
(the features, labels and t-SNE of every variant), so a second call redoes the table and the
plot without computing them again.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import study_digits, study_events, study_variants

NAMES = ("baseline", "no_leak", "complete_leak", "no_reset", "recurrence")
PAPER = {"baseline": 0.271, "no_leak": 0.355, "complete_leak": 0.273, "no_reset": 0.277, "recurrence": 0.855}
TSNE_SAMPLES = 2000  # the first N test samples go into each t-SNE (all 450 of the event digits)


def last_hidden_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the last hidden layer: the neurons before the last Linear
    of a SpikingMLP (a RecurrentLIF holds its own Linear), the RNN of an RNN baseline."""
    if isinstance(model, study_events.RNNClassifier):
        return model.rnn
    layers = list(model.layers)
    last_linear = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    if last_linear == 0:
        raise ValueError("the network has no hidden layer before its last Linear")
    return layers[last_linear - 1]


def hidden_rates(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last hidden layer's output averaged over time, ``[B, hidden]``: spike rates of an
    SNN, the mean hidden state of an RNN."""
    captured = []

    def keep(module, inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = last_hidden_layer(model).register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return captured[-1].mean(0)


def silhouette(features, labels) -> float:
    """The silhouette coefficient of ``features`` [N, D] clustered by ``labels`` [N], cosine distance."""
    from sklearn.metrics import silhouette_score

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("the silhouette needs samples of at least two classes")
    return float(silhouette_score(features, labels, metric="cosine"))


def tsne(features, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE embedding of ``features`` [N, D] (cosine metric, PCA start, fixed seed)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float64)
    perplexity = min(30.0, (len(features) - 1) / 3)
    # One thread: on 2 shared cores, Barnes-Hut t-SNE of 450 points took 42 s with the
    # default threads and 7 s with one.
    with threadpool_limits(1):
        return TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity,
                    random_state=seed).fit_transform(features)


def test_features(model, test_set) -> tuple[torch.Tensor, torch.Tensor]:
    """The last hidden layer's rates on every test sample, and the labels."""
    features, labels = [], []
    for x, y in study_variants.batches(test_set):
        features.append(hidden_rates(model, x))
        labels.append(y)
    return torch.cat(features), torch.cat(labels)


def run(names, *, data: str = "ndigits", data_dir=None, quick: bool = False, epochs: int | None = None, out: Path,
        models: Path, tsne_samples: int = TSNE_SAMPLES, seed: int = 0, samples: int | None = None,
        progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    setup = study_events.setup_for(data, quick, epochs)
    runs = study_variants.train_all(names, setup, data_dir=data_dir, models=models, seed=seed, samples=samples,
                                    progress=progress)
    test_set = study_events.load_split(setup, data_dir, "test", samples)
    path = out / "features.pt"
    saved = torch.load(path, weights_only=True) if path.is_file() else {}
    rows, embeddings = [], {}
    for name in names:
        settings = {"tsne_samples": tsne_samples, "seed": seed, "epochs": len(runs[name].history)}
        if saved.get(name, {}).get("settings") == settings:
            features, labels, embedding = (saved[name][key] for key in ("features", "labels", "embedding"))
        else:
            features, labels = test_features(runs[name].model, test_set)
            keep = min(tsne_samples, len(labels))
            embedding = torch.from_numpy(tsne(features[:keep].numpy(), seed))
            saved[name] = {"settings": settings, "features": features, "labels": labels, "embedding": embedding}
        embeddings[name] = (embedding.numpy(), labels[:len(embedding)].numpy())
        rows.append({"network": name, "label": study_variants.NETWORKS[name].label, "test_acc": runs[name].mean_acc,
                     "silhouette": silhouette(features.numpy(), labels.numpy()),
                     "paper": PAPER.get(name, float("nan")),
                     "silent_samples": int((features.abs().sum(1) == 0).sum()), "samples": len(labels),
                     "mean_rate": float(features.mean())})
    torch.save(saved, path)
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(table(rows) + "\n\n" + ordering_summary(rows) + "\n")
    plot(embeddings, rows, out / "tsne.png")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| variant | test acc. | silhouette (cosine) | paper (Table 9) | mean hidden rate | silent samples |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['test_acc']:.1f} % | {r['silhouette']:.3f} | {r['paper']:.3f} | "
                     f"{r['mean_rate']:.3f} | {r['silent_samples']} of {r['samples']} |")
    return "\n".join(lines)


def ordering_summary(rows: list[dict]) -> str:
    """Table 9's finding: the recurrent SNN separates the classes best."""
    by = {r["network"]: r["silhouette"] for r in rows}
    order = sorted(by, key=by.get, reverse=True)
    line = f"Silhouette, highest first: {' > '.join(order)}"
    if "recurrence" not in by or len(by) < 2:
        return line + " (Table 9's ordering needs recurrence and another variant)"
    holds = order[0] == "recurrence"
    return line + f"; Table 9's finding (recurrence highest) {'holds' if holds else 'does NOT hold'}."


def plot(embeddings: dict, rows: list[dict], path: Path) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    score = {r["network"]: r["silhouette"] for r in rows}
    fig, axes = plt.subplots(1, len(embeddings), figsize=(3.4 * len(embeddings), 3.5), squeeze=False)
    for ax, (name, (points, labels)) in zip(axes[0], embeddings.items()):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, vmin=0, vmax=9)
        ax.set_title(f"{study_variants.short(name)}\nsilhouette {score[name]:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scatter, ax=axes[0].tolist(), ticks=range(10), fraction=0.02, label="class")
    fig.suptitle("t-SNE of the last hidden layer's spike rates, test set (Figure 6)", y=1.05)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return True


def parser():
    p = study_variants.parser("features", __doc__, NAMES)
    p.add_argument("--tsne-samples", type=int, default=TSNE_SAMPLES,
                   help=f"test samples in each t-SNE (default {TSNE_SAMPLES}; the silhouette uses all)")
    return p


def main(argv=None) -> list[dict]:
    args = parser().parse_args(argv)
    if args.tsne_samples < 2:
        raise SystemExit(f"--tsne-samples must be at least 2, got {args.tsne_samples}")
    out, models = study_variants.resolve(args, "features")
    rows = study_events.run_from_args("features", partial(run, tsne_samples=args.tsne_samples), args.networks, args,
                                      out, models)
    print(f"\nFeature space on {args.data}: silhouette of the last hidden layer's spike rates on the test set, "
          "cosine distance; ours beside Table 9's (N-MNIST)\n")
    print(table(rows))
    print("\n" + ordering_summary(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, tsne.png, features.pt); networks in {models}/")
    return rows
