"""Model cards at training time: gather the run's inputs, render, log to MLflow with the version."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from service.catalog import Catalog
from service.feature_client import open_feature_store
from service.model import LoadedModel
from training.dataset import TimeSplit, TrainingSet
from training.evaluation import AGE_BANDS, age_band_label
from training.model_card import CardInputs, measure_latency, render_card, render_comparison
from training.policies import Block, greedy
from training.registry import client_for
from training.settings import TrainingSettings

log = logging.getLogger(__name__)

CARD_DIR = "card"
ACTION_TYPES = ("offer", "service", "retention", "info", "no_action")


def feature_descriptions(settings: TrainingSettings, data: TrainingSet) -> list[tuple[str, str]]:
    """Each model feature with its meaning from the Feast registry."""
    if data.source != "feast":
        return [(f, "context feature of the imported log") for f in data.spec.customer_features]
    store = open_feature_store(settings.feature_repo, settings.feature_store_yaml)
    service = store.get_feature_service(settings.feature_service)
    described = {
        f.name: f.description for p in service.feature_view_projections for f in p.features
    }
    return [(f, described.get(f, "")) for f in data.spec.customer_features]


def exposure_by_age(
    blocks: list[Block], score: Callable[[np.ndarray], np.ndarray], threshold: float
) -> pd.DataFrame:
    """Share of each action type the policy shows per age band, and predicted acceptance."""
    if not blocks or "age" not in blocks[0].frame.columns:
        return pd.DataFrame()
    policy = greedy(score, threshold)
    parts = []
    for block in blocks:
        m, c = block.shape
        choice = policy(block).argmax(axis=1)  # c: no_action
        propensity = score(block.matrix).reshape(m, c)
        types = np.array([a.type.value for a in block.actions] + ["no_action"])
        picked = propensity[np.arange(m), np.minimum(choice, c - 1)]
        parts.append(
            pd.DataFrame(
                {
                    "age": block.frame["age"].to_numpy(),
                    "type": types[choice],
                    "acceptance": np.where(choice < c, picked, 0.0),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["band"] = pd.cut(frame["age"], AGE_BANDS, right=False).map(age_band_label)
    shares = pd.crosstab(frame["band"], frame["type"], normalize="index")
    table = shares.reindex(columns=list(ACTION_TYPES), fill_value=0.0)
    table["decisions"] = frame.groupby("band", observed=True).size()
    table["acceptance"] = frame.groupby("band", observed=True)["acceptance"].mean()
    return table


def card_inputs(
    settings: TrainingSettings,
    data: TrainingSet,
    split: TimeSplit,
    matrix: np.ndarray,
    catalog: Catalog,
    booster: lgb.Booster,
    score: Callable[[np.ndarray], np.ndarray],
    blocks: list[Block],
) -> CardInputs:
    """What the card needs from this run besides MLflow's params and metrics."""
    holdout = data.frame[split.holdout]
    shown = (holdout["action_id"] != catalog.no_action.id).to_numpy()
    gains = booster.feature_importance(importance_type="gain")
    ranked = sorted(zip(data.spec.feature_names, gains, strict=True), key=lambda x: -x[1])[:15]
    return CardInputs(
        features=feature_descriptions(settings, data),
        holdout_predicted=score(matrix[split.holdout][shown]),
        holdout_outcomes=holdout["outcome"].to_numpy(dtype=np.float64)[shown],
        holdout_touchpoints=holdout["touchpoint"],
        importance=[(name, float(gain)) for name, gain in ranked],
        exposure=exposure_by_age(blocks, score, catalog.policy.no_action_threshold),
        latency=measure_latency(booster, matrix[split.holdout][:25]),
    )


def publish_cards(
    settings: TrainingSettings, version: str, inputs: CardInputs, champion: LoadedModel | None
) -> None:
    """Render the card (and the comparison with the champion); log both to the version's run.

    The card's Markdown also becomes the model version's description in the registry.
    """
    client = client_for(settings)
    name = settings.model_name
    model_version = client.get_model_version(name, version)
    run = client.get_run(str(model_version.run_id))
    aliases = list(getattr(model_version, "aliases", []) or [])
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, UTC)
    card = render_card(
        name,
        version,
        aliases,
        created.strftime("%Y-%m-%d %H:%M UTC"),
        run.info.run_id,
        run.data.params,
        run.data.tags,
        run.data.metrics,
        inputs,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / CARD_DIR
        (folder / "images").mkdir(parents=True)
        (folder / "card.md").write_text(card.markdown, encoding="utf-8")
        (folder / "card.html").write_text(card.html, encoding="utf-8")
        for file_name, data in card.images.items():
            (folder / "images" / file_name).write_bytes(data)
        if champion is not None:
            old = client.get_run(str(client.get_model_version(name, champion.version).run_id))
            (folder / "comparison.html").write_text(
                render_comparison(
                    name, (champion.version, old.data.metrics), (version, run.data.metrics)
                ),
                encoding="utf-8",
            )
        client.log_artifacts(run.info.run_id, str(folder), artifact_path=CARD_DIR)
    client.update_model_version(
        name, version, description=registry_description(card.markdown, run.info.run_id, version)
    )
    log.info("model card logged with version %s (card/card.md, card/card.html)", version)


DESCRIPTION_LIMIT = 5000  # MLflow's model_versions.description column (PostgreSQL enforces it)


DESCRIPTION_PRIORITY = ("Model details", "Intended use", "Limitations and caveats")


def registry_description(markdown: str, run_id: str, version: str) -> str:
    """The card as a registry version description within MLflow's limit: whole sections, in
    the card's order; details, intended use and limitations first, then as many others as fit;
    and where the full card is."""
    footer = (
        f"\n\n_Full card: artifacts `card/card.md` and `card/card.html` of run {run_id}; "
        f"the service shows it at /models/{version}/card._"
    )
    title, *sections = (part.rstrip() for part in markdown.split("\n## "))
    order = sorted(
        range(len(sections)),
        key=lambda i: (not sections[i].startswith(DESCRIPTION_PRIORITY), i),
    )
    budget = DESCRIPTION_LIMIT - len(title) - len(footer)
    chosen = set()
    for i in order:
        cost = len(sections[i]) + len("\n\n## ")
        if cost <= budget:
            chosen.add(i)
            budget -= cost
    return "".join([title, *(f"\n\n## {sections[i]}" for i in sorted(chosen)), footer])
