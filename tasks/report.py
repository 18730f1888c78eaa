"""The run's pictures: the spectrum with its eigengap, the cluster sizes, the embedding.

The ``write_report`` task (:mod:`.summary`) calls :func:`sample_embedding` (a few checkpointed
parts, read on the workers) and :func:`render_figures`, then puts the PNGs in the Prefect
markdown artifact and in one self-contained ``report.html``. matplotlib is imported here,
lazily, and used through ``matplotlib.figure.Figure`` alone: no pyplot, so no global figure
registry and no GUI backend, which is what makes it safe on a Dask worker thread (PNG output
is drawn by Agg).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from typing import Any

import numpy as np

from .assign import assign_labels
from .checkpoints import Part, read_part
from .embed import embed
from .job import Block, Job
from .parallel import fan_out
from .storage import Store

#: Rows of the embedding the scatter shows: enough to see the clusters, few enough that the
#: PNG stays small and the points do not paint the plot solid.
SAMPLE_ROWS = 2_000
#: Parts the sample is read from: at most this many embedding and label parts are opened
#: (one block each), whatever the size of the dataset.
SAMPLE_PARTS = 16
#: Resolution of every figure; 100 dpi keeps the three PNGs near 100 KB in all.
DPI = 100


# --------------------------------------------------------------------------------------------
# The sample of the embedding
# --------------------------------------------------------------------------------------------


def _sample_part(item: tuple[Block, Part, Part, np.ndarray], embed_store: Store,
                 embed_key: str, label_store: Store, label_key: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The chosen rows of one embedding part and their raw labels (read on a worker)."""
    _, embed_part, label_part, local = item
    U = read_part(embed_store, embed_part, stage="embed", expect={"key": embed_key})[0]["u"]
    raw = read_part(label_store, label_part, stage="assign_labels",
                    expect={"key": label_key})[0]["raw"]
    return U[local], raw[local]


def allocate(rows: int, sizes: list[int]) -> list[int]:
    """How many of ``rows`` to take from each of blocks of ``sizes``: in proportion to their
    size, never more than a block holds, summing to exactly ``min(rows, sum(sizes))``
    (largest remainders get the rounding, so the total is what the picture's title says)."""
    sizes_ = np.asarray(sizes, dtype=np.int64)
    total = int(sizes_.sum())
    want = min(rows, total)
    if want == 0:
        return [0] * len(sizes)
    exact = want * sizes_ / total
    take = np.minimum(np.floor(exact).astype(np.int64), sizes_)
    order = np.argsort(-(exact - take), kind="stable")  # largest remainder first
    for i in order[: want - int(take.sum())]:
        take[i] += 1
    return take.tolist()


def sample_embedding(job: Job, rows: int = SAMPLE_ROWS, parts: int = SAMPLE_PARTS
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``rows`` rows of the embedding: their row numbers in the dataset (n_sample,),
    their embedding (n_sample, k) and their raw labels (n_sample,).

    At most ``parts`` blocks are chosen at random, then rows within them in proportion to
    their size, so the memory and the reads are bounded by ``parts`` blocks. Seeded by the
    run's seed: a rerun draws the same picture.
    """
    embed_store, embed_list = embed.store(job), embed.manifest(job).parts
    labels = assign_labels.manifest(job)  # a missing one is a CorruptCheckpoint: ours
    blocks = job.plan.blocks
    rng = np.random.default_rng(job.seed)
    chosen = np.sort(rng.choice(len(blocks), size=min(parts, len(blocks)), replace=False))
    items = []
    for i, take in zip(chosen, allocate(rows, [blocks[i].rows for i in chosen]), strict=True):
        b = blocks[i]
        if take:
            local = np.sort(rng.choice(b.rows, size=take, replace=False))
            items.append((b, embed_list[i], labels.parts[i], local))
    found = fan_out(_sample_part, items, embed_store, job.stage_keys["embed"],
                    assign_labels.store(job), job.stage_keys["assign_labels"])
    return (np.concatenate([b.start + local for b, _, _, local in items]),
            np.concatenate([u for u, _ in found]),
            np.concatenate([raw for _, raw in found]))


#: Planes tried by :func:`cluster_plane` besides the centres' two principal axes.
PLANES = 256


def _separation(xy: np.ndarray, labels: np.ndarray, clusters: np.ndarray) -> float:
    """How well a 2-D view keeps the clusters apart: the smallest distance between two
    clusters' centres over the sum of their spreads (95th percentile radius), plus 2 % of
    the largest centre distance so that point-like clusters compare by distance alone."""
    centres = np.array([xy[labels == c].mean(axis=0) for c in clusters])
    spreads = np.array([np.quantile(np.linalg.norm(xy[labels == c] - centre, axis=1), 0.95)
                        for c, centre in zip(clusters, centres, strict=True)])
    i, j = np.triu_indices(len(clusters), 1)
    gaps = np.linalg.norm(centres[i] - centres[j], axis=1)
    return float(np.min(gaps / (spreads[i] + spreads[j] + 0.02 * gaps.max() + 1e-300)))


def cluster_plane(U: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The sample's coordinates (n, 2) on the plane that keeps its clusters furthest apart,
    for display only.

    The row-normalized embedding of c well-separated clusters puts each near its own
    direction: c points at the corners of a simplex. Its principal axes are then nearly
    equal, and the plane they pick can stack two corners (four exact blobs drawn as two dots
    and a streak). Instead, every plane within the span of the cluster centres is a
    candidate: the centres' two principal axes and ``PLANES`` random ones (seeded); the one
    whose worst pair of clusters is furthest apart, relative to their spreads, is drawn.
    Unassigned rows (label < 0) are drawn but do not choose the plane.
    """
    U = np.asarray(U, dtype=np.float64)
    clusters = np.unique(labels[labels >= 0])
    if len(U) == 0:
        return np.zeros((0, 2))
    if len(clusters) < 2:  # nothing to separate: the sample's own principal axes
        centred = U - U.mean(axis=0)
        basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
        xy = centred @ basis.T
        return xy if xy.shape[1] == 2 else np.column_stack([xy, np.zeros(len(xy))])
    centres = np.array([U[labels == c].mean(axis=0) for c in clusters])
    middle = centres.mean(axis=0)
    _, sv, Vt = np.linalg.svd(centres - middle, full_matrices=False)
    span = Vt[: max(2, int(np.count_nonzero(sv > 1e-9 * sv[0])))]  # (p, k), p ≥ 2
    if span.shape[0] < 2:  # k = 1 embedding column: pad with a zero axis
        return np.column_stack([(U - middle) @ span[0], np.zeros(len(U))])
    rng = np.random.default_rng(seed)
    planes = [span[:2]] + [np.linalg.qr(rng.standard_normal((span.shape[0], 2)))[0].T @ span
                           for _ in range(PLANES)]
    centred = U - middle
    views = [centred @ plane.T for plane in planes]
    scores = [_separation(xy, labels, clusters) for xy in views]
    return views[int(np.argmax(scores))]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_spectrum(spectrum: list[float], suggestion: dict[str, Any], n_clusters: int
                  ) -> bytes:
    """Two panels: the leading eigenvalues with the run's ``n_clusters`` marked, and the
    suggestion's criterion (each candidate k's eigengap λ_k − λ_{k+1}) with the level a gap
    must clear to be called clear; the suggested k, or the range it cannot choose within, is
    shaded on both."""
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(spectrum, dtype=float)
    index = np.arange(1, values.size + 1)
    fig = _figure(8.4, 3.6)
    ax, crit = fig.subplots(1, 2, width_ratios=[1.25, 1])
    ax.plot(index, values, "o-", color="#1f4e79", markersize=4, linewidth=1)
    chosen, low, high = suggestion.get("n_clusters"), suggestion.get("low"), \
        suggestion.get("high")
    if chosen is not None:
        span, label = (chosen, chosen + 1), f"suggested: {chosen}"
    elif low is not None:
        span, label = (low, high + 1), f"no clear choice: {low} to {high}"
    else:
        span, label = None, None
    for axis in (ax, crit):
        shift = 0.5 if axis is crit else 0.0  # the criterion's points sit on k itself
        if span:
            axis.axvspan(span[0] - shift, span[1] - shift, color="#f4a261", alpha=0.35,
                         label=label if axis is ax else None)
        axis.axvline(n_clusters + 0.5 - shift, color="#555555", linestyle="--", linewidth=1,
                     label=f"n_clusters = {n_clusters} (this run)" if axis is ax else None)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("k")
        axis.grid(alpha=0.3)
    ax.set_ylabel(r"eigenvalue $\lambda_k$ of $D^{-1/2} K D^{-1/2}$")
    ax.set_xlim(0.5, values.size + 0.5)
    ax.set_title("Spectrum")
    ax.legend(loc="upper right", fontsize=8)
    candidates, curve = suggestion.get("candidates") or [], suggestion.get("curve") or []
    if curve:
        crit.plot(candidates, curve, "o-", color="#2a9d8f", markersize=4, linewidth=1)
        crit.axhline(max(curve) / suggestion["ratio"], color="#c0392b", linewidth=1,
                     linestyle=":", label=f"clear: {suggestion['ratio']:g}× every other gap")
        crit.set_xlim(min(candidates) - 0.5, max(candidates) + 0.5)
        crit.legend(loc="upper right", fontsize=8)
    crit.set_ylabel(r"eigengap $\lambda_k - \lambda_{k+1}$")
    crit.set_title("Criterion: " + (f"suggested n_clusters = {chosen}" if chosen is not None
                                    else "no clear choice"))
    return _png(fig)


def plot_cluster_sizes(sizes: list[int]) -> bytes:
    """One bar per cluster, coloured as in the embedding scatter, with its row count."""
    fig = _figure(6.4, 3.2)
    ax = fig.add_subplot()
    labels = np.arange(len(sizes))
    bars = ax.bar(labels, sizes, color=_colours(len(sizes)))
    if len(sizes) <= 20:
        ax.bar_label(bars, labels=[f"{n:,}" for n in sizes], fontsize=8)
        ax.set_xticks(labels)
    ax.set_xlabel("cluster")
    ax.set_ylabel("rows")
    ax.set_title(f"Cluster sizes ({sum(sizes):,} rows)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_embedding(xy: np.ndarray, labels: np.ndarray, n_rows: int) -> bytes:
    """The sample on the plane of :func:`cluster_plane`, one colour per cluster."""
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    n_labels = int(labels.max(initial=-1)) + 1
    colours = _colours(max(n_labels, 1))
    noise = labels < 0  # an assigner that marks outliers with -1
    if noise.any():
        ax.scatter(xy[noise, 0], xy[noise, 1], s=5, color="#999999", label="unassigned")
    for c in range(n_labels):
        mine = labels == c
        if mine.any():
            ax.scatter(xy[mine, 0], xy[mine, 1], s=5, color=colours[c], label=str(c),
                       alpha=0.8, linewidths=0)
    if n_labels <= 20:
        ax.legend(title="cluster", fontsize=7, title_fontsize=8, markerscale=2.5,
                  loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xlabel("cluster plane, axis 1")
    ax.set_ylabel("cluster plane, axis 2")
    ax.set_title(f"Embedding: {len(labels):,} of {n_rows:,} rows")
    ax.grid(alpha=0.3)
    return _png(fig)


def warm_up() -> None:
    """Load matplotlib and draw a small figure (fonts, mathtext, the layout engine), so that
    the report's first figure does not pay for it (the flow's process does this while it
    waits for its Prefect server)."""
    plot_spectrum([1.0, 0.5, 0.1, 0.05], {"n_clusters": None, "candidates": [2],
                                          "curve": [0.05], "ratio": 5.0}, 1)


def render_figures(summary: dict[str, Any], xy: np.ndarray, labels: np.ndarray
                   ) -> dict[str, bytes]:
    """The three PNGs, by name: ``spectrum``, ``cluster_sizes``, ``embedding``."""
    return {
        "spectrum": plot_spectrum(summary["spectrum"], _suggestion(summary),
                                  summary["parameters"]["n_clusters"]),
        "cluster_sizes": plot_cluster_sizes(summary["cluster_sizes"]),
        "embedding": plot_embedding(xy, labels, summary["input"]["rows"]),
    }


CAPTIONS = {
    "spectrum": "Leading eigenvalues of the normalized affinity, and the eigengaps the "
                "n_clusters suggestion compares",
    "cluster_sizes": "Rows per cluster",
    "embedding": "A sample of the spectral embedding on the plane that keeps its clusters "
                 "furthest apart, coloured by label",
}


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------
# The HTML report
# --------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>"
                         f"{html.escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; } td.num { text-align: right; }
.suggestion { font-size: 1.1em; background: #fff4e5; padding: 0.5em 1em;
              border-left: 4px solid #f4a261; }
"""


def report_html(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    """One self-contained HTML page: the suggestion, the three figures (inline PNGs) and the
    tables of the summary."""
    sizes = summary["cluster_sizes"]
    total = max(sum(sizes), 1)
    parts = [
        "<!DOCTYPE html>", "<html lang=en><head><meta charset=utf-8>",
        "<title>Spectral clustering report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>Spectral clustering</h1>",
        f"<p>{summary['input']['rows']:,} rows from {summary['input']['files']} file(s); "
        f"labels in <code>{html.escape(str(summary['outputs']['labels']))}</code>.</p>",
        f"<p class=suggestion>{html.escape(suggestion_sentence(summary))}</p>",
    ]
    for name, png in figures.items():
        parts.append(f'<figure><img src="{data_uri(png)}" alt="{html.escape(CAPTIONS[name])}">'
                     f"<figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>")
    parts += ["<h2>Clusters</h2>", _table(
        ["cluster", "rows", "share"],
        [[i, f"{n:,}", f"{100 * n / total:.1f}%"] for i, n in enumerate(sizes)], {0, 1, 2})]
    spectrum = summary["spectrum"]
    gaps = [f"{v - w:.6f}" for v, w in itertools.pairwise(spectrum)] + [""]
    parts += ["<h2>Spectrum</h2>", _table(
        ["k", "eigenvalue", "gap to the next"],
        [[i + 1, f"{v:.6f}", g] for i, (v, g) in enumerate(zip(spectrum, gaps, strict=True))],
        {0, 1, 2})]
    parts += ["<h2>Stages</h2>", _table(
        ["stage", "seconds", "state", "parts computed"], stage_rows(summary), {1, 3})]
    parts.append("</body></html>")
    return "\n".join(parts)


def all_stages(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every stage of a summary, in the order of the run."""
    from .stages import STAGES

    found = {**summary["stages"], **summary.get("input_and_output_stages", {})}
    return {s: found[s] for s in STAGES if s in found}


def stage_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The stage table: the plan's seconds, then every stage's seconds, state and the parts
    it computed, of how many, counted as its progress lines in the run's log count them (per
    pass where a stage makes several: "pass 1 (column sums) 3/3, pass 2 (Gram) 1/1"). A
    reused stage computed none."""
    plan = summary.get("plan")
    rows = [["plan", f"{plan['seconds']:.2f}", str(plan["state"]), ""]] if plan else []
    for s, info in all_stages(summary).items():
        if info.get("passes"):
            parts = ", ".join(f"{what} {0 if info.get('reused') else n}/{total}"
                              for what, (n, total) in info["passes"].items())
        elif info.get("parts") is None:
            parts = ""
        else:
            parts = f"{info['parts_computed']}/{info['parts']}"
        rows.append([s, f"{info['seconds']:.2f}", str(info["state"]), parts])
    return rows


def suggestion_record(spectrum: list[float]) -> dict[str, Any]:
    """The n_clusters suggestion of a spectrum as ``summary.json`` keeps it: the result's
    fields, and its sentence as ``text``."""
    import spectral_core as sc

    found = sc.suggest_n_clusters(spectrum)
    return {**found.as_dict(), "text": found.describe()}


def _suggestion(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's suggestion (a summary written before it had one: from its spectrum)."""
    if "n_clusters_suggestion" in summary:
        return summary["n_clusters_suggestion"]
    return suggestion_record(summary["spectrum"])


def suggestion_sentence(summary: dict[str, Any]) -> str:
    """The headline: the suggestion in words, and how it compares with this run's
    ``n_clusters``."""
    suggestion, n_clusters = _suggestion(summary), summary["parameters"]["n_clusters"]
    chosen = suggestion["n_clusters"]
    if chosen is None:
        return (f"Suggested n_clusters: {suggestion['text']}; this run used "
                f"n_clusters = {n_clusters}.")
    verdict = "the same as this run's" if chosen == n_clusters else \
        f"this run used n_clusters = {n_clusters}"
    return f"Suggested {suggestion['text']}; {verdict}."
