"""`python -m service`: serve the API with the settings from the environment."""

from __future__ import annotations

import warnings

import uvicorn

from service.app import create_app
from service.settings import ServiceSettings


def main() -> None:
    """Start uvicorn on the configured host and port."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    settings = ServiceSettings()
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )


if __name__ == "__main__":
    main()
