"""`nba`: simulate, build features, train and register, or all of it at once (`nba demo`)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from service.catalog import Catalog, load_catalog
from service.errors import NBAError
from training.feature_store import apply_repo, materialize
from training.settings import TrainingSettings
from training.simulator import SimulationConfig, simulate, write_world
from training.train import train_and_register

log = logging.getLogger("nba")

Step = Callable[[TrainingSettings, Catalog], None]


def run_simulate(settings: TrainingSettings, catalog: Catalog) -> None:
    """Simulate customers and a logged decision history."""
    config = SimulationConfig(
        n_customers=settings.n_customers,
        n_decisions=settings.n_decisions,
        history_weeks=settings.history_weeks,
        as_of=settings.as_of,
        seed=settings.seed,
        exploration=settings.exploration,
    )
    log.info(
        "simulating %d customers and %d decisions up to %s (seed %d)",
        config.n_customers,
        config.n_decisions,
        config.as_of.date(),
        config.seed,
    )
    write_world(simulate(config, catalog), settings.feature_repo / "data", settings.data_dir)


def run_features(settings: TrainingSettings, catalog: Catalog) -> None:
    """Apply the Feast repo and materialise the latest values into the online store."""
    log.info("feast apply on %s", settings.feature_repo)
    apply_repo(settings.feature_repo)
    log.info("materialising features up to %s into the online store", settings.as_of)
    materialize(settings.feature_repo, settings.as_of + timedelta(seconds=1), timedelta(days=400))


def run_train(settings: TrainingSettings, catalog: Catalog) -> None:
    """Train, evaluate, log to MLflow, register and set the serving alias."""
    result = train_and_register(settings, catalog)
    m = result.metrics
    log.info(
        "model %s version %s (run %s)", settings.model_name, result.model_version, result.run_id
    )
    log.info("holdout AUC %.3f, log loss %.4f", m["holdout_auc"], m["holdout_log_loss"])
    if "holdout_learned_value" in m:
        log.info(
            "true value per decision on the holdout (EUR): learned %.2f | logging %.2f | "
            "legacy rules %.2f | random %.2f | oracle %.2f",
            m["holdout_learned_value"],
            m["holdout_logging_value"],
            m["holdout_rules_value"],
            m["holdout_random_value"],
            m["holdout_oracle_value"],
        )
        log.info(
            "top-1 agreement with the oracle %.3f, NDCG@5 %.3f",
            m["holdout_top1_oracle_agreement"],
            m["holdout_ndcg_at_5"],
        )


def print_example(settings: TrainingSettings) -> None:
    """Show how to call the service that `make demo` starts next."""
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"\nNext: the API starts on {url} (docs at {url}/docs). Try:\n"
        f"  curl -s -X POST {url}/v1/decisions -H 'content-type: application/json' \\\n"
        '       -d \'{"customer_id": "C0000042", "touchpoint": "call_center"}\'\n',
        flush=True,
    )


STEPS: dict[str, tuple[Step, ...]] = {
    "simulate": (run_simulate,),
    "features": (run_features,),
    "train": (run_train,),
    "demo": (run_simulate, run_features, run_train),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nba", description=__doc__)
    parser.add_argument("command", choices=sorted(STEPS), help="what to run")
    parser.add_argument("--customers", type=int, help="simulated customers (NBA_N_CUSTOMERS)")
    parser.add_argument("--decisions", type=int, help="simulated decisions (NBA_N_DECISIONS)")
    parser.add_argument("--seed", type=int, help="random seed (NBA_SEED)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `nba` command."""
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    for noisy in ("feast", "mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "n_customers": args.customers,
            "n_decisions": args.decisions,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    try:
        settings = TrainingSettings(**overrides)
        catalog = load_catalog(settings.catalog_path)
        steps = STEPS[args.command]
        started = time.perf_counter()
        for number, step in enumerate(steps, start=1):
            step_started = time.perf_counter()
            log.info("[%d/%d] %s", number, len(steps), (step.__doc__ or step.__name__).strip())
            step(settings, catalog)
            log.info(
                "[%d/%d] done in %.1f s", number, len(steps), time.perf_counter() - step_started
            )
        log.info("%s finished in %.1f s", args.command, time.perf_counter() - started)
    except (NBAError, FileNotFoundError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    if args.command == "demo":
        print_example(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
