"""`nba`: simulate, build features, train, promote, roll back, import logs, bootstrap a
stack, issue API keys, or run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from service.auth import issue_key
from service.catalog import Catalog, load_catalog
from service.errors import NBAError
from service.model import ModelRegistry
from service.vocabulary import ModelRole, Scope
from training.feature_store import apply_repo, materialize
from training.logs import import_log, write_import
from training.loop import run_loop
from training.registry import promote, rollback
from training.reporting import policy_table
from training.settings import TrainingSettings
from training.simulator import SimulationConfig, simulate, write_world
from training.train import train_and_register

log = logging.getLogger("nba")

DEFAULT_KEYS_FILE = Path("secrets/api_keys.yaml")

Step = Callable[[TrainingSettings, Catalog, argparse.Namespace], None]


def run_simulate(settings: TrainingSettings, catalog: Catalog, _: argparse.Namespace) -> None:
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


def run_features(settings: TrainingSettings, catalog: Catalog, _: argparse.Namespace) -> None:
    """Apply the Feast repo and materialise the latest values into the online store."""
    log.info("feast apply on %s", settings.feature_repo)
    apply_repo(settings.feature_repo, settings.feature_store_yaml)
    log.info("materialising features up to %s into the online store", settings.as_of)
    materialize(
        settings.feature_repo,
        settings.as_of + timedelta(seconds=1),
        timedelta(days=400),
        settings.feature_store_yaml,
    )


def run_train(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Train both model families, evaluate, log to MLflow and register the winner as challenger."""
    result = train_and_register(settings, catalog, dask=getattr(args, "dask", False))
    m = result.metrics
    log.info(
        "%s version %s (%s, run %s) is %s",
        settings.model_name,
        result.model_version,
        result.family,
        result.run_id,
        " and ".join(f"@{a}" for a in result.aliases),
    )
    log.info(
        "holdout AUC %.3f [%.3f, %.3f], log loss %.4f, calibration error %.4f, "
        "hit@1 %.3f, NDCG@5 %.3f",
        m["candidate/auc"],
        m["candidate/auc_lo"],
        m["candidate/auc_hi"],
        m["candidate/log_loss"],
        m["candidate/calibration_error"],
        m["candidate/hit_at_1"],
        m["candidate/ndcg_at_5"],
    )
    with pd.option_context("display.width", 160, "display.precision", 2):
        log.info("policy value per decision (EUR) on the holdout:\n%s", policy_table(m))
    log.info(
        "logged reward per decision: %.2f EUR (the logging policy, observed)",
        m["policy/logging/observed"],
    )


def run_promote(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Make the challenger champion if every gate passes (or with --force)."""
    result = promote(settings, force=getattr(args, "force", False))
    if result.already_champion:
        log.info(
            "nothing to promote: version %s is already @%s", result.challenger, ModelRole.CHAMPION
        )
        return
    for check in result.checks:
        log.info("gate passed: %s", check)
    for refusal in result.refusals:
        log.warning("gate refused: %s", refusal)
    if result.passed:
        log.info("promoted version %s to @%s", result.challenger, ModelRole.CHAMPION)
    elif getattr(args, "force", False) and result.challenger:
        log.warning("promoted version %s by force despite the refusals", result.challenger)
    else:
        log.warning("not promoted: @%s stays version %s", ModelRole.CHAMPION, result.champion)


def run_rollback(settings: TrainingSettings, catalog: Catalog, _: argparse.Namespace) -> None:
    """Point @champion back at the version it replaced."""
    current, previous = rollback(settings)
    log.info("@%s moved back from version %s to version %s", ModelRole.CHAMPION, current, previous)


def run_import(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Validate and import a decision log (CSV or Parquet) and its action table."""
    if not args.decisions or not args.actions:
        raise ValueError("import-logs needs --decisions FILE and --actions FILE")
    imported = import_log(Path(args.decisions), Path(args.actions))
    log_path, catalog_path = write_import(imported, Path(args.out))
    log.info(
        "imported %d decisions, %d actions, context features %s",
        len(imported.decisions),
        len(imported.catalog["actions"]) - 1,  # type: ignore[arg-type]
        imported.feature_columns,
    )
    log.info(
        "train on it with: NBA_TRAINING_LOG=%s NBA_CATALOG_PATH=%s nba train",
        log_path,
        catalog_path,
    )


def run_closed_loop(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Serve, let simulated customers respond, feed back, retrain and promote, per round."""
    reports = run_loop(settings, catalog, args.rounds, args.per_round)
    log.info("round | served | decisions | true value EUR | acceptance | trained | promoted")
    for r in reports:
        log.info(
            "%5d | v%-5s | %9d | %14.2f | %10.3f | v%-6s | %s",
            r.round,
            r.served_version,
            r.decisions,
            r.true_value,
            r.acceptance,
            r.trained_version,
            "yes" if r.promoted else "no",
        )


def run_simulate_once(
    settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace
) -> None:
    """Simulate the demo world unless its data is there already."""
    if settings.training_log.exists() and (settings.feature_repo / "data").is_dir():
        log.info(
            "world data found in %s and %s: kept", settings.training_log, settings.feature_repo
        )
        return
    run_simulate(settings, catalog, args)


def run_train_once(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Train and register a champion unless the registry has one."""
    registry = ModelRegistry(
        settings.mlflow_tracking_uri, settings.model_name, settings.model_cache_dir
    )
    version = registry.resolve(ModelRole.CHAMPION)
    if version is not None:
        log.info("%s@%s is version %s: kept", settings.model_name, ModelRole.CHAMPION, version)
        return
    run_train(settings, catalog, args)


def run_issue_key(settings: TrainingSettings, catalog: Catalog, args: argparse.Namespace) -> None:
    """Create an API key for one calling system; print it once, store only its hash."""
    path = settings.api_keys_file or DEFAULT_KEYS_FILE
    if not args.name or not args.scopes:
        raise ValueError("issue-key needs --name NAME and --scopes decide,feedback,review,admin")
    scopes = [Scope(s.strip()) for s in args.scopes.split(",") if s.strip()]
    key = issue_key(path, args.name, scopes, args.rate)
    log.info(
        "key '%s' with scopes %s%s added to %s (only its hash is stored; set NBA_API_KEYS_FILE=%s)",
        args.name,
        ",".join(scopes),
        f" and {args.rate:g} requests/s per worker" if args.rate else "",
        path,
        path,
    )
    print(key, flush=True)


def print_example(settings: TrainingSettings) -> None:
    """Show how to call the service that `make demo` starts next."""
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"\nNext: the API starts on {url} (docs at {url}/docs). Try:\n"
        f"  curl -s -X POST {url}/v1/decisions -H 'content-type: application/json' \\\n"
        '       -d \'{"customer_id": "C0000042", "touchpoint": "call_center", '
        '"explain": true}\'\n',
        flush=True,
    )


STEPS: dict[str, tuple[Step, ...]] = {
    "simulate": (run_simulate,),
    "features": (run_features,),
    "train": (run_train,),
    "promote": (run_promote,),
    "rollback": (run_rollback,),
    "import-logs": (run_import,),
    "loop": (run_closed_loop,),
    "demo": (run_simulate, run_features, run_train, run_promote),
    "bootstrap": (run_simulate_once, run_features, run_train_once),
    "issue-key": (run_issue_key,),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nba", description=__doc__)
    parser.add_argument("command", choices=sorted(STEPS), help="what to run")
    parser.add_argument("--customers", type=int, help="simulated customers (NBA_N_CUSTOMERS)")
    parser.add_argument(
        "--decisions",
        help="simulate: how many decisions (NBA_N_DECISIONS); import-logs: the decision log file",
    )
    parser.add_argument("--seed", type=int, help="random seed (NBA_SEED)")
    parser.add_argument("--actions", help="import-logs: the action table (CSV or Parquet)")
    parser.add_argument("--out", default="data/imported", help="import-logs: output folder")
    parser.add_argument("--force", action="store_true", help="promote despite refused gates")
    parser.add_argument(
        "--dask",
        action="store_true",
        help="train: join and fit the binary family in partitions on a Dask cluster "
        "(NBA_DASK_SCHEDULER, else a local one)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="loop: how many rounds")
    parser.add_argument("--per-round", type=int, default=2000, help="loop: decisions per round")
    parser.add_argument("--name", help="issue-key: the calling system the key is for")
    parser.add_argument(
        "--scopes", help="issue-key: comma-separated scopes (decide, feedback, review, admin)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="issue-key: the key's own requests per second per worker "
        "(default: NBA_RATE_LIMIT_PER_SECOND)",
    )
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
    for noisy in ("feast", "mlflow", "alembic", "urllib3", "httpx", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides: dict[str, Any] = {"n_customers": args.customers, "seed": args.seed}
    if args.command != "import-logs" and args.decisions is not None:
        overrides["n_decisions"] = int(args.decisions)
    try:
        settings = TrainingSettings(**{k: v for k, v in overrides.items() if v is not None})
        catalog = load_catalog(settings.catalog_path)
        steps = STEPS[args.command]
        started = time.perf_counter()
        for number, step in enumerate(steps, start=1):
            step_started = time.perf_counter()
            log.info("[%d/%d] %s", number, len(steps), (step.__doc__ or step.__name__).strip())
            step(settings, catalog, args)
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
