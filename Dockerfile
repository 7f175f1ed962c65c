# syntax=docker/dockerfile:1
# The image of the API and the workers (docker-compose.yml). It installs what pyproject.toml
# declares, from the wheel built in the first stage, and nothing else: no sources, no compiler,
# no pip cache, no emulator. tests/deploy/test_installed_wheel.py runs the same wheel from a fresh
# virtual environment (migrate, serve, worker, one push delivered); hadolint lints this file.

# --- 1. wheels: the project's and every dependency's, built or downloaded once ---------------
FROM python:3.11-slim-bookworm AS wheels
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cli cli
COPY core core
COPY api api
COPY auth auth
COPY devices devices
COPY inbox inbox
COPY notifications notifications
COPY news news
COPY tracking tracking
COPY workers workers
COPY console console
RUN pip wheel --wheel-dir /wheels .

# --- 2. the emulator (development profile only; never in the production image) ---------------
FROM python:3.11-slim-bookworm AS emulator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/emulator
COPY --from=wheels /wheels /wheels
# The emulator's own dependencies are in the dev extra; it runs from its source directory.
RUN pip install --no-index --find-links=/wheels /wheels/chuong-*.whl \
    && pip install "h2>=4.1,<5" "trustme>=1.2,<2" \
    && rm -rf /wheels
COPY emulator emulator
# The same uid as the service: the key files it writes (mode 0600) into the shared volume must be
# readable by the app containers.
RUN useradd --system --uid 10001 chuong && mkdir -p /run/emulator && chown 10001 /run/emulator
USER 10001
ENTRYPOINT ["python", "-m", "emulator"]

# --- 3. the service ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS service
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/chuong-*.whl \
    && useradd --system --uid 10001 --home-dir /srv/chuong --create-home chuong
USER 10001
WORKDIR /srv/chuong
EXPOSE 8000
# The API's liveness. Worker containers override it (docker-compose.yml: `chuong worker --check`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["chuong", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
