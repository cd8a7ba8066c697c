# One image for the API, the bootstrap job and the MLflow tracking server (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# LightGBM's library links OpenMP (libgomp), which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN pip install "uv==0.13.8"
COPY requirements-runtime.lock ./
# Compiled at build time: the image never writes bytecode, so it would compile every start.
RUN uv pip install --system --no-deps --compile-bytecode -r requirements-runtime.lock

COPY pyproject.toml README.md ./
COPY service service
COPY training training
COPY feature_repo feature_repo
RUN uv pip install --system --no-deps --compile-bytecode . \
    && useradd --create-home --uid 1000 nba \
    && mkdir -p data models feature_repo/data secrets /mlartifacts \
    && chown -R nba /app /mlartifacts

USER nba
ENV NBA_HOST=0.0.0.0 \
    NBA_PORT=8000 \
    NBA_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2)"
CMD ["python", "-m", "service"]
