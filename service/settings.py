"""Service settings, read from `NBA_*` environment variables when built (never at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.vocabulary import ChallengerMode

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")


class ServiceSettings(BaseSettings):
    """Where the service finds its features, model and catalog, and where it listens."""

    model_config = SettingsConfigDict(env_prefix="NBA_", extra="ignore", frozen=True)

    feature_repo: Path = Field(Path("feature_repo"), description="Feast repo folder")
    feature_store_yaml: Path | None = Field(
        None,
        description="feature_store.yaml to use instead of the repo's own (a profile, e.g. "
        "feature_repo/profiles/production.yaml); ${VARS} in it come from the environment",
    )
    feature_service: str = Field(
        "nba_model_features", description="Feast feature service the model reads"
    )
    mlflow_tracking_uri: str = Field(
        "sqlite:///mlruns/mlflow.db", description="MLflow tracking and registry store"
    )
    model_name: str = Field("nba-propensity", description="Registered model name")
    model_cache_dir: Path = Field(
        Path("models"),
        description="Local copies of loaded models; the last good champion starts the service "
        "when the registry is unreachable",
    )
    model_poll_seconds: float = Field(
        10.0,
        ge=0,
        description="How often to check the registry aliases for a new version (0: never)",
    )
    registry_timeout_seconds: float = Field(
        5.0, gt=0, description="Timeout of one request to an MLflow tracking server"
    )
    challenger_mode: ChallengerMode = Field(
        ChallengerMode.OFF,
        description="off; split: the challenger serves `challenger_share` of customers; "
        "shadow: the challenger is scored and logged beside every champion decision",
    )
    challenger_share: float = Field(
        0.1, ge=0, le=1, description="Share of customers the challenger serves in split mode"
    )
    routing_salt: str = Field(
        "nba", description="Salt of the sticky customer buckets (change it to reshuffle)"
    )
    catalog_path: Path = Field(DEFAULT_CATALOG, description="Action catalog YAML file")
    catalog_reload_seconds: float = Field(
        5.0, ge=0, description="How often to check the catalog file for changes (0: never)"
    )
    consent_feature_service: str = Field(
        "nba_consent", description="Feast feature service with the consent flags"
    )
    decision_log_path: Path = Field(
        Path("data/decision_log.db"), description="SQLite decision log (decisions and feedback)"
    )
    decision_log_url: str | None = Field(
        None,
        description="postgresql://... to keep the decision log in PostgreSQL (shared by several "
        "processes); unset: the SQLite file at decision_log_path",
    )
    exploration_seed: int | None = Field(
        None, description="Seed of the exploration draws (unset: fresh randomness)"
    )
    host: str = Field("127.0.0.1", description="Address the API binds to")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on")
    workers: int = Field(1, ge=1, description="API worker processes")
    log_level: str = Field("info", description="Log level of the API process")
    log_format: Literal["text", "json"] = Field(
        "text", description="text for people, json (one object a line) for log collectors"
    )
    api_keys_file: Path | None = Field(
        None,
        description="YAML file of API key hashes and scopes (`nba issue-key` writes it); "
        "unset: no authentication, for the local demo only",
    )
    max_body_bytes: int = Field(
        16_384, ge=256, description="Largest request body accepted; larger ones get 413"
    )
    rate_limit_per_second: float = Field(
        0.0,
        ge=0,
        description="Requests per second each API key may send to each worker (0: no limit)",
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests an API key may send at once above its rate"
    )
    feature_read_timeout_seconds: float = Field(
        0.5,
        gt=0,
        description="Socket timeout of a Redis online-store read; a failed read is not retried "
        "with backoff (the answer falls back instead)",
    )
    max_in_flight: int = Field(
        128,
        ge=0,
        description="Requests in progress per worker above which new ones get 503 "
        "`overloaded` at once (load shedding); 0 turns it off",
    )
    fault_retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After of a 503 answer (feature store or decision log down)"
    )
