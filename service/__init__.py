"""Next-best-action decision service: catalog, featurisation, scoring and the FastAPI app."""

from service import feast_import  # noqa: F401  (first: before anything imports Feast)
