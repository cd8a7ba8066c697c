"""Next-best-action decision service: catalog, featurisation, scoring and the FastAPI app."""
