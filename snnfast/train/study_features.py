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
(the features and labels of every variant) so the numbers and the plot redo without the
networks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import study_digits, study_variants

NAMES = ("baseline", "no_leak", "complete_leak", "no_reset", "recurrence")
PAPER = {"baseline": 0.271, "no_leak": 0.355, "complete_leak": 0.273, "no_reset": 0.277, "recurrence": 0.855}
QUICK = dict(study_variants.QUICK, tsne_samples=450)
FULL = dict(study_variants.FULL, tsne_samples=2000)


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
        features.append(study_variants.hidden_rates(model, x))
        labels.append(y)
    return torch.cat(features), torch.cat(labels)


def run(names, *, data: str, data_dir, schedule: dict, out: Path, models: Path, seed: int = 0,
        samples: int | None = None, progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    trained, histories, _, test_set = study_variants.train_all(
        names, data, data_dir, schedule, models, seed=seed, samples=samples, progress=progress)
    rows, embeddings = [], {}
    saved = {}
    for name in names:
        features, labels = test_features(trained[name], test_set)
        saved[name] = {"features": features, "labels": labels}
        keep = min(schedule["tsne_samples"], len(labels))
        embeddings[name] = (tsne(features[:keep].numpy(), seed), labels[:keep].numpy())
        rows.append({"variant": name, "label": study_variants.VARIANTS[name].label,
                     "test_acc": 100 * histories[name][-1]["test_acc"],
                     "silhouette": silhouette(features.numpy(), labels.numpy()),
                     "paper": PAPER.get(name, float("nan")),
                     "silent_samples": int((features.abs().sum(1) == 0).sum()), "samples": len(labels),
                     "mean_rate": float(features.mean())})
    torch.save(saved, out / "features.pt")
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
    by = {r["variant"]: r["silhouette"] for r in rows}
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
    score = {r["variant"]: r["silhouette"] for r in rows}
    fig, axes = plt.subplots(1, len(embeddings), figsize=(3.4 * len(embeddings), 3.5), squeeze=False)
    for ax, (name, (points, labels)) in zip(axes[0], embeddings.items()):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, vmin=0, vmax=9)
        ax.set_title(f"{study_variants.VARIANTS[name].label}\nsilhouette {score[name]:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scatter, ax=axes[0].tolist(), ticks=range(10), fraction=0.02, label="class")
    fig.suptitle("t-SNE of the last hidden layer's spike rates, test set (Figure 6)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return True


def parser():
    return study_variants.parser("features", __doc__, NAMES, QUICK, FULL)


def main(argv=None) -> list[dict]:
    args = parser().parse_args(argv)
    data, schedule, out, models = study_variants.resolve(args, QUICK, FULL, "features")
    rows = run(args.variants, data=data, data_dir=args.data_dir, schedule=schedule, out=out, models=models,
               seed=args.seed, samples=args.samples, progress=not args.no_progress)
    print(f"\nFeature space on {data}, {schedule['epochs']} epochs: silhouette of the last hidden layer's spike "
          "rates on the test set, cosine distance\n")
    print(table(rows))
    print("\n" + ordering_summary(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, tsne.png, features.pt); models in {models}/")
    return rows
