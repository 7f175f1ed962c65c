# Production-like image of the API and worker (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
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
COPY migrations migrations
RUN pip install . && useradd --system --uid 10001 chuong
USER chuong
EXPOSE 8000
CMD ["chuong", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
