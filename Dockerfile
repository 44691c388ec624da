# One image for the gateway, the model workers and the one-shot commands
# (train, apply, ramp): the command picks the role, e.g.
#   docker run abgate gateway --port 8000
#   docker run abgate worker --version v1 --port 8000
#
# Stage 1 installs abgate into a virtualenv; stage 2 copies only that
# virtualenv onto a fresh slim base, so pip's build machinery, caches and the
# source tree stay out of the image that runs. Every dependency ships as a
# binary wheel: no compiler is needed in either stage.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY abgate ./abgate
COPY core ./core
COPY recorded ./recorded
COPY gateway ./gateway
COPY model_workers ./model_workers
COPY experiments ./experiments
COPY analysis ./analysis
COPY ramp ./ramp
RUN /opt/venv/bin/pip install .


FROM python:3.11-slim AS runtime

# A fixed numeric uid: Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --gid 10001 abgate \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin abgate \
    && mkdir -p /models /app \
    && chown abgate:abgate /models

COPY --from=build /opt/venv /opt/venv
COPY experiments/*.yaml /app/experiments/

# OMP_NUM_THREADS=1: one request is one row, and OpenMP spin-waits between
# model workers sharing cores turn sub-millisecond predictions into timeouts.
# ABGATE_LOG_FORMAT=json: one JSON object per log line for the log collector.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    ABGATE_HOST=0.0.0.0 \
    ABGATE_REGISTRY_DIR=/models \
    ABGATE_LOG_FORMAT=json

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Gateway and workers both answer GET /health on port 8000 (each in its own
# container); no curl in a slim image, so Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]

ENTRYPOINT ["abgate"]
CMD ["gateway", "--port", "8000"]
