"""Feast definitions: the customer entity, its feature views and the model's feature service.

Source files live in `data/` beside this file and are written by `nba simulate`
(or by an import of real data with the same columns).
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64

# Absolute paths: the DuckDB offline store reads source paths relative to the working
# directory, not to this repo, so they are anchored to this file's folder here.
DATA_DIR = Path(__file__).resolve().parent / "data"

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="One customer, identified by the same ID on every channel.",
)

profile_source = FileSource(
    name="customer_profile_source",
    path=str(DATA_DIR / "customer_profile.parquet"),
    timestamp_field="event_timestamp",
)

activity_source = FileSource(
    name="customer_activity_source",
    path=str(DATA_DIR / "customer_activity.parquet"),
    timestamp_field="event_timestamp",
)

consent_source = FileSource(
    name="customer_consent_source",
    path=str(DATA_DIR / "customer_consent.parquet"),
    timestamp_field="event_timestamp",
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=400),
    schema=[
        Field(name="age", dtype=Int64, description="Age of the customer in years"),
        Field(name="tenure_months", dtype=Int64, description="Months since the customer joined"),
        Field(name="monthly_income", dtype=Float32, description="Net monthly income in EUR"),
        Field(name="num_products", dtype=Int64, description="Number of products held"),
        Field(name="has_credit_card", dtype=Int64, description="Holds a credit card (1/0)"),
        Field(name="has_personal_loan", dtype=Int64, description="Holds a personal loan (1/0)"),
        Field(name="has_mortgage", dtype=Int64, description="Holds a mortgage (1/0)"),
        Field(name="has_savings", dtype=Int64, description="Holds a savings account (1/0)"),
        Field(name="has_investments", dtype=Int64, description="Holds investment funds (1/0)"),
        Field(name="has_insurance", dtype=Int64, description="Holds an insurance policy (1/0)"),
        Field(name="is_premium", dtype=Int64, description="Has a premium current account (1/0)"),
    ],
    source=profile_source,
    description="Slowly changing profile and product holdings.",
)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=21),
    schema=[
        Field(name="balance", dtype=Float32, description="Current account balance in EUR"),
        Field(
            name="balance_trend_90d",
            dtype=Float32,
            description="Relative change of the balance over the last 90 days",
        ),
        Field(
            name="monthly_card_spend", dtype=Float32, description="Card spending last month (EUR)"
        ),
        Field(
            name="digital_logins_30d", dtype=Int64, description="Web and app logins, last 30 days"
        ),
        Field(
            name="app_sessions_30d", dtype=Int64, description="Mobile app sessions, last 30 days"
        ),
        Field(name="branch_visits_90d", dtype=Int64, description="Branch visits, last 90 days"),
        Field(
            name="travel_transactions_90d",
            dtype=Int64,
            description="Card transactions abroad, last 90 days",
        ),
        Field(name="salary_inflow", dtype=Int64, description="Salary is paid into this bank (1/0)"),
        Field(name="open_complaints", dtype=Int64, description="Complaints not yet resolved"),
    ],
    source=activity_source,
    description="Weekly snapshots of balances, engagement and complaints.",
)

customer_consent = FeatureView(
    name="customer_consent",
    entities=[customer],
    ttl=timedelta(days=400),
    schema=[
        Field(
            name="consent_marketing_web", dtype=Int64, description="Marketing on the website (1/0)"
        ),
        Field(name="consent_marketing_app", dtype=Int64, description="Marketing in the app (1/0)"),
        Field(
            name="consent_marketing_call_center",
            dtype=Int64,
            description="Marketing during calls (1/0)",
        ),
        Field(name="consent_marketing_email", dtype=Int64, description="Marketing by email (1/0)"),
        Field(
            name="consent_marketing_store", dtype=Int64, description="Marketing in branches (1/0)"
        ),
        Field(
            name="consent_profiling",
            dtype=Int64,
            description="Personalisation from profile data allowed (1/0)",
        ),
    ],
    source=consent_source,
    description="GDPR consent per purpose and channel; never a model input.",
)

nba_model_features = FeatureService(
    name="nba_model_features",
    features=[customer_profile, customer_activity],
    description="Customer features the propensity model reads.",
)

nba_consent = FeatureService(
    name="nba_consent",
    features=[customer_consent],
    description="Consent flags the decision engine checks before scoring.",
)
