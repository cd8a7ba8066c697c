"""Model cards: what a product owner reads before a model version may serve customers.

Follows the sections of "Model Cards for Model Reporting" (Mitchell et al.): details,
intended use, data, features, metrics with intervals and slices, policy value against the
champion, exposure by age band, limitations, latency. Built from what MLflow holds for the
run, rendered as Markdown and as a self-contained HTML file, logged with the version.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import markdown as markdown_lib
import matplotlib
import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.fast_predict import SmallBatchPredictor

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TEMPLATES = Path(__file__).with_name("templates")
INTENDED_USE = Path(__file__).with_name("intended_use.yaml")
POLICY_NAMES = {
    "candidate": "this model",
    "champion": "current champion",
    "rules": "catalog rules only",
    "popular": "most popular",
    "random": "random",
    "logging": "logging policy",
    "oracle": "oracle (simulator only)",
}
OBJECTIVES = {
    "binary": "binary cross-entropy on accept / not accept (calibrated propensities)",
    "ranker": "XE-NDCG ranking over each customer's decisions, with an isotonic calibration map",
}


@dataclass(frozen=True)
class CardInputs:
    """Everything a card shows that MLflow does not hold: data the run computed."""

    features: list[tuple[str, str]]
    holdout_predicted: np.ndarray
    holdout_outcomes: np.ndarray
    holdout_touchpoints: pd.Series
    importance: list[tuple[str, float]]
    exposure: pd.DataFrame  # per age band: decisions, share per action type, acceptance
    latency: dict[str, float]


@dataclass(frozen=True)
class ModelCard:
    """A rendered card."""

    markdown: str
    html: str
    images: dict[str, bytes]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _interval(metrics: Mapping[str, float], key: str, digits: int = 3) -> str:
    return f"{_fmt(metrics.get(f'{key}_lo'), digits)} - {_fmt(metrics.get(f'{key}_hi'), digits)}"


def measure_latency(booster: lgb.Booster, rows: np.ndarray, repeats: int = 200) -> dict[str, float]:
    """p50 / p99 of scoring `rows` and of one row's contributions, single-threaded (us), the
    way the service calls the model."""
    scorer = SmallBatchPredictor(booster)
    predict, contrib = [], []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        scorer.predict(rows)
        predict.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        scorer.contributions(rows[:1])
        contrib.append(time.perf_counter_ns() - start)
    return {
        "rows": float(len(rows)),
        "predict_p50_us": float(np.percentile(predict, 50) / 1000),
        "predict_p99_us": float(np.percentile(predict, 99) / 1000),
        "contrib_p50_us": float(np.percentile(contrib, 50) / 1000),
    }


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _plots(inputs: CardInputs, metrics: Mapping[str, float]) -> dict[str, bytes]:
    order = np.argsort(inputs.holdout_predicted)
    bins = [b for b in np.array_split(order, 10) if len(b)]
    predicted = [inputs.holdout_predicted[b].mean() for b in bins]
    observed = [inputs.holdout_outcomes[b].mean() for b in bins]
    figure, axis = plt.subplots(figsize=(5, 4))
    top = max(max(predicted), max(observed)) * 1.1
    axis.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    axis.plot(predicted, observed, marker="o", label="this model (deciles)")
    axis.set(
        xlabel="predicted acceptance",
        ylabel="observed acceptance",
        title="Calibration on the holdout",
    )
    axis.legend()
    images = {"calibration.png": _png(figure)}

    names = [n for n, _ in inputs.importance][::-1]
    gains = [g for _, g in inputs.importance][::-1]
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.barh(names, gains, color="#3b6ea5")
    axis.set(xlabel="total gain", title="Feature importance (top 15)")
    images["importance.png"] = _png(figure)

    slices = sorted(
        {
            k.split("/")[0]
            for k in metrics
            if k.count("/") == 1
            and k.endswith("/auc")
            and not k.startswith(("policy", "model", "candidate", "champion"))
        }
    )
    figure, axis = plt.subplots(figsize=(7, 4))
    values = [metrics[f"{s}/auc"] for s in slices]
    low = [metrics[f"{s}/auc"] - metrics.get(f"{s}/auc_lo", metrics[f"{s}/auc"]) for s in slices]
    high = [metrics.get(f"{s}/auc_hi", metrics[f"{s}/auc"]) - metrics[f"{s}/auc"] for s in slices]
    axis.errorbar(range(len(slices)), values, yerr=[low, high], fmt="o", capsize=4)
    axis.set_xticks(range(len(slices)), slices, rotation=30, ha="right")
    axis.set(ylabel="AUC (95 % interval)", title="AUC by slice")
    images["slices.png"] = _png(figure)
    return images


def card_metrics(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """The winner's metrics under plain names: 'auc', 'touchpoint_web/auc', ..."""
    return {
        k.removeprefix("candidate/"): v
        for k, v in run_metrics.items()
        if k.startswith("candidate/")
    }


def render_card(
    name: str,
    version: str,
    aliases: list[str],
    created: str,
    run_id: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    run_metrics: Mapping[str, float],
    inputs: CardInputs,
) -> ModelCard:
    """Render the card as Markdown and as self-contained HTML (images embedded)."""
    metrics = card_metrics(run_metrics)
    intended = yaml.safe_load(INTENDED_USE.read_text(encoding="utf-8"))
    family = params.get("model_family", "binary")
    overall = [
        {"name": label, "value": _fmt(metrics.get(key)), "interval": _interval(metrics, key)}
        for key, label in (
            ("auc", "AUC"),
            ("log_loss", "Log loss"),
            ("brier", "Brier score"),
            ("calibration_error", "Expected calibration error"),
        )
    ] + [
        {
            "name": "Hit@1 of accepted actions",
            "value": _fmt(metrics.get("hit_at_1")),
            "interval": "n/a",
        },
        {
            "name": "NDCG@5 of accepted actions",
            "value": _fmt(metrics.get("ndcg_at_5")),
            "interval": "n/a",
        },
    ]
    slice_names = sorted(
        {k.split("/")[0] for k in metrics if k.endswith("/auc") and k.count("/") == 1}
    )
    slices = [
        {
            "name": s,
            "rows": f"{metrics.get(f'{s}/rows', 0):,.0f}",
            "auc": f"{_fmt(metrics.get(f'{s}/auc'))} ({_interval(metrics, f'{s}/auc')})",
            "calibration_error": _fmt(metrics.get(f"{s}/calibration_error")),
            "log_loss": _fmt(metrics.get(f"{s}/log_loss")),
        }
        for s in slice_names
    ]
    has_truth = "true_value" in metrics
    header = "| Policy | DR | 95 % interval | ESS |" + (" True |" if has_truth else "")
    rule = "|---|---|---|---|" + ("---|" if has_truth else "")
    lines = []
    for key, label in POLICY_NAMES.items():
        source = (
            metrics
            if key == "candidate"
            else {
                k.removeprefix(f"policy/{key}/"): v
                for k, v in run_metrics.items()
                if k.startswith(f"policy/{key}/")
            }
        )
        if "dr" not in source:
            continue
        line = (
            f"| {label} | {_fmt(source['dr'], 2)} | {_interval(source, 'dr', 2)} | "
            f"{_fmt(source.get('dr_ess'), 0)} |"
        )
        if has_truth:
            line += f" {_fmt(source.get('true_value'), 2)} |"
        lines.append(line)
    exposure = [
        {
            "band": band,
            "decisions": f"{row['decisions']:,.0f}",
            **{
                t: f"{row.get(t, 0.0):.1%}"
                for t in ("offer", "service", "retention", "info", "no_action")
            },
            "acceptance": f"{row['acceptance']:.1%}",
        }
        for band, row in inputs.exposure.iterrows()
    ]
    counts = inputs.holdout_touchpoints.value_counts()
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    text = environment.get_template("card.md.j2").render(
        name=name,
        version=version,
        family=family,
        created=created,
        run_id=run_id,
        aliases_line=("Aliases when registered: " + ", ".join(f"`@{a}`" for a in aliases))
        if aliases
        else "No alias: this version does not serve.",
        objective=OBJECTIVES.get(family, family),
        tags=tags,
        params=params,
        intended=intended,
        acceptance_rate=f"{inputs.holdout_outcomes.mean():.1%}",
        touchpoint_counts=", ".join(f"{k} {v:,}" for k, v in counts.items()),
        features=inputs.features,
        overall=overall,
        slices=slices,
        has_truth=has_truth,
        policy_header=header + "\n" + rule,
        policy_lines=lines,
        exposure=exposure,
        latency={k: _fmt(v, 0) for k, v in inputs.latency.items()},
    )
    images = _plots(inputs, metrics)
    return ModelCard(text, to_html(text, images, f"Model card: {name} v{version}"), images)


def to_html(text: str, images: Mapping[str, bytes], title: str) -> str:
    """Markdown to one self-contained HTML page: images become data URIs."""
    body = markdown_lib.markdown(text, extensions=["tables"])
    for file_name, data in images.items():
        body = body.replace(
            f'src="images/{file_name}"',
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"',
        )
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    return environment.get_template("page.html.j2").render(title=title, body=body)


COMPARED = (
    ("candidate/auc", "AUC"),
    ("candidate/log_loss", "Log loss"),
    ("candidate/calibration_error", "Expected calibration error"),
    ("candidate/hit_at_1", "Hit@1"),
    ("candidate/dr", "Policy value, DR (EUR)"),
    ("candidate/true_value", "Policy value, true (EUR, simulator)"),
    ("candidate/regret", "Regret against the oracle (EUR)"),
)


def render_comparison(
    name: str,
    champion: tuple[str, Mapping[str, float]],
    challenger: tuple[str, Mapping[str, float]],
) -> str:
    """Side-by-side figures of the challenger and the champion, each on its own holdout run.

    The challenger's run also valued the champion on the challenger's holdout: that row is
    the like-for-like comparison the promotion gates use.
    """
    (old_version, old), (new_version, new) = champion, challenger
    lines = [
        f"# {name}: challenger v{new_version} against champion v{old_version}",
        "",
        f"| Figure | Champion v{old_version} | Challenger v{new_version} | Difference |",
        "|---|---|---|---|",
    ]
    for key, label in COMPARED:
        if key in old or key in new:
            a, b = old.get(key), new.get(key)
            delta = _fmt(b - a) if a is not None and b is not None else "n/a"
            lines.append(f"| {label} | {_fmt(a)} | {_fmt(b)} | {delta} |")
    if "champion/dr" in new:
        lines += [
            "",
            "On the challenger's holdout (the comparison the promotion gates use):",
            "",
            "| Slice | Champion DR (EUR) | Challenger DR (EUR) |",
            "|---|---|---|",
            f"| all | {_fmt(new['champion/dr'], 2)} | {_fmt(new['candidate/dr'], 2)} |",
        ]
        for key in sorted(k for k in new if k.startswith("champion/touchpoint_")):
            slice_name = key.split("/")[1]
            lines.append(
                f"| {slice_name} | {_fmt(new[key], 2)} | "
                f"{_fmt(new.get(f'candidate/{slice_name}/dr'), 2)} |"
            )
    lines += [
        "",
        f"Full cards: [champion v{old_version}](../{old_version}/card), "
        f"[challenger v{new_version}](../{new_version}/card).",
    ]
    return to_html("\n".join(lines), {}, f"{name}: v{new_version} against v{old_version}")
