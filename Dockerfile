# syntax=docker/dockerfile:1
# The loyalty-streams worker image: `loyalty worker` by default, any other `loyalty` command
# by argument (`docker run IMAGE simulate --events 1000`). Every Python package is installed
# from uv.lock with its hash; the worker needs no Java (Kafka runs elsewhere). Nor Rust: the
# native replay engine (native/) is not built here, so `loyalty replay` in the image runs on
# the Python engine (the same files, slower; it says so on stderr). Replays of big files
# belong on a machine with `make install`, not in the worker image.
#
#   docker build -t loyalty-streams .
#   docker run -e LOYALTY_BOOTSTRAP_SERVERS=kafka:9092 -v loyalty-data:/var/lib/loyalty loyalty-streams

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS builder
# uv, the Makefile's version, hash-checked
COPY docker/uv-requirements.txt /tmp/uv-requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes \
        -r /tmp/uv-requirements.txt
ENV UV_PROJECT_ENVIRONMENT=/opt/loyalty \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
WORKDIR /src
# The dependencies first, from the lock file alone: this layer is rebuilt only when uv.lock
# or pyproject.toml change, not on every source edit.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11
# Then the project as a wheel (not editable: the image carries no source tree). uv.lock does
# not pin pyproject's build backend, so it comes pinned with hashes from build-constraints.txt.
COPY docker/build-constraints.txt /tmp/build-constraints.txt
COPY README.md loyalty-program.toml ./
COPY schemas ./schemas
COPY streams ./streams
RUN uv build --wheel --out-dir /tmp/dist --python /usr/local/bin/python3.11 \
        --build-constraints /tmp/build-constraints.txt --require-hashes \
    && uv pip install --python /opt/loyalty/bin/python --no-deps /tmp/dist/*.whl

FROM ${PYTHON_IMAGE}
# A fixed uid, so that volumes and Kubernetes' securityContext (runAsUser, fsGroup) agree.
RUN groupadd --system --gid 10001 loyalty \
    && useradd --system --uid 10001 --gid loyalty --no-create-home \
        --home-dir /var/lib/loyalty --shell /usr/sbin/nologin loyalty \
    && mkdir -p /var/lib/loyalty /etc/loyalty \
    && chown loyalty:loyalty /var/lib/loyalty
COPY --from=builder /opt/loyalty /opt/loyalty
# The installed package has no repository around it, so the default rules file is named
# explicitly; mount another file here (Kubernetes: the ConfigMap) to change the program.
COPY loyalty-program.toml /etc/loyalty/loyalty-program.toml
ENV PATH=/opt/loyalty/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOYALTY_RULES=/etc/loyalty/loyalty-program.toml \
    LOYALTY_DATA_DIR=/var/lib/loyalty \
    LOYALTY_CACHE_DIR=/var/lib/loyalty/cache \
    LOYALTY_WEB_HOST=0.0.0.0
# RocksDB: each worker's table partitions. Losing it costs a recovery from the changelog,
# not data, but a volume keeps restarts fast.
VOLUME ["/var/lib/loyalty"]
USER 10001:10001
WORKDIR /var/lib/loyalty
EXPOSE 6066
# The API binds to LOYALTY_WEB_HOST, which in Compose and Kubernetes is the worker's own
# name (other workers forward requests to it), not always 127.0.0.1: ask that address.
# Python, because the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; host = os.environ.get('LOYALTY_WEB_HOST', '127.0.0.1'); host = '127.0.0.1' if host == '0.0.0.0' else host; urllib.request.urlopen(f\"http://{host}:{os.environ.get('LOYALTY_WEB_PORT', '6066')}/healthz\", timeout=4)"]
ENTRYPOINT ["loyalty"]
CMD ["worker"]
