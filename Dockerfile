# plantwatch service image: `plantwatch run` by default; the same image trains and simulates.
#   CPU (default):  docker build -t plantwatch .
#   NVIDIA GPU:     docker build -t plantwatch:gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
# The torch wheel index decides the build: the CPU one is about 200 MB, a CUDA one several GB.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from its own index, in a layer of its own: it changes far less often than the code.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY models ./models
COPY simulators ./simulators
COPY config/scenarios ./config/scenarios
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/plantwatch --shell /usr/sbin/nologin plantwatch \
    && mkdir -p /var/lib/plantwatch/artifacts /var/lib/plantwatch/state \
    && chown -R plantwatch:plantwatch /var/lib/plantwatch

# An unprivileged user; artifacts are mounted read-only for the service (the trainer writes them).
USER plantwatch
EXPOSE 9108

# Liveness only (/healthz); readiness (/readyz: broker connected, models loaded) is for Prometheus and people.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2)"]

# Exec form: plantwatch is PID 1 and receives SIGTERM directly (clean stop: drain, `offline`, exit 0).
ENTRYPOINT ["plantwatch"]
CMD ["run", "--config", "/etc/plantwatch/plantwatch.yaml"]
