# syntax=docker/dockerfile:1
# One image for every role of memory-operator: the operator (`run`, the default), the memory server
# (`server`) and the jobs (`expire`, `backup`, `restore`).
#
#   docker build -t ghcr.io/memory-operator/memory-operator:0.1.0 .
#   # with the local embedding model (all-MiniLM-L6-v2, CPU torch) for clusters without internet:
#   docker build --build-arg INCLUDE_EMBEDDING_MODEL=true -t ghcr.io/memory-operator/memory-operator:server-1 .

# Both stages use the same base, so the virtual environment's interpreter path holds in the final one.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG INCLUDE_EMBEDDING_MODEL=false
ARG TORCH_VERSION=2.13.0
# CPU-only torch: the default index would bring several GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/memory-operator
ENV PATH=/opt/memory-operator/bin:$PATH
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /wheels .
RUN set -eu; \
    wheel="$(ls /wheels/memory_operator-*.whl)"; \
    if [ "$INCLUDE_EMBEDDING_MODEL" = "true" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"; \
        pip install "${wheel}[embedded]"; \
    else \
        pip install "$wheel"; \
    fi; \
    memory-operator --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="memory-operator" \
      org.opencontainers.image.description="Kubernetes operator, memory server and jobs for long-term memory of AI agents (mem0, Qdrant)" \
      org.opencontainers.image.source="https://github.com/memory-operator/memory-operator" \
      org.opencontainers.image.url="https://github.com/memory-operator/memory-operator" \
      org.opencontainers.image.documentation="https://github.com/memory-operator/memory-operator/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="memory-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# No model download, no telemetry, no bytecode writes (the root file system is read-only in the pods);
# HOME points at /tmp, the one writable folder (an emptyDir in every pod the chart and operator make).
ENV PATH=/opt/memory-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MEM0_TELEMETRY=false \
    HOME=/tmp
RUN groupadd --system --gid 10001 memory-operator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin memory-operator
COPY --from=build /opt/memory-operator /opt/memory-operator
USER 10001:10001
ENTRYPOINT ["memory-operator"]
CMD ["run"]
