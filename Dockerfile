# One image for every role of memory-operator: the operator (`run`, the default), the memory server
# (`server`) and the jobs (`expire`, `backup`, `restore`). Two variants from this one file:
#
#   # the operator and its jobs, and memory servers that use a remote embedding provider:
#   docker build -t ghcr.io/memory-operator/memory-operator:0.1.0 .
#   # with the local embedding model (all-MiniLM-L6-v2 on the CPU), the builtin server's default image:
#   docker build --build-arg INCLUDE_EMBEDDING_MODEL=true -t ghcr.io/memory-operator/memory-operator:server-1 .
#
# scripts/build-image.sh builds the same with buildah, no daemon needed, passing the build machine's pip
# settings and pip cache in as build arguments and mounts. docs/install.md has the details.

# Debian's own Python (3.11 in bookworm); the base is the same in every stage, so the virtual
# environment's interpreter, /usr/bin/python3, is the same in the build and in the final image.
ARG BASE_IMAGE=debian:bookworm-slim

# What the final image runs on: Python, the CA certificates and the fixed non-root user, nothing else.
FROM ${BASE_IMAGE} AS runtime
RUN set -eux; \
    apt-get update; \
    apt-get install --yes --no-install-recommends python3 ca-certificates; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    groupadd --system --gid 10001 memory-operator; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin memory-operator

FROM runtime AS build
ARG INCLUDE_EMBEDDING_MODEL=false
ARG TORCH_VERSION=2.13.0
# Where torch comes from: the configured index when empty (PyPI's Linux build, a CUDA build that
# scripts/image/cpu-only-torch.py trims to what a CPU needs), or a CPU-only index such as
# https://download.pytorch.org/whl/cpu, whose build is smaller still and needs no trimming.
ARG TORCH_INDEX_URL=
# The build machine's pip settings (scripts/build-image.sh passes them); pip ignores empty values.
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ARG PIP_FIND_LINKS=
ARG PIP_CERT=
ARG PIP_DEFAULT_TIMEOUT=
# pip keeps its cache in /root/.cache/pip, a mount of the build machine's cache with buildah; nothing
# of this stage but the virtual environment reaches the final image.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/memory-operator/bin:$PATH
# The C compiler and binutils (readelf, strip) serve cpu-only-torch.py only.
RUN set -eux; \
    apt-get update; \
    apt-get install --yes --no-install-recommends python3-venv gcc libc6-dev binutils; \
    rm -rf /var/lib/apt/lists/*; \
    python3 -m venv /opt/memory-operator
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/image/requirements.py scripts/image/cpu-only-torch.py scripts/image/drop_section.py scripts/image/
# The dependencies first, in a layer of their own that a change of the source does not rebuild.
# torch is pinned before the rest so that sentence-transformers takes this build (as scripts/setup.sh);
# then go torch's GPU-only companions, which it imports only when present, and its GPU libraries.
RUN set -eux; \
    extras=""; \
    if [ "$INCLUDE_EMBEDDING_MODEL" = "true" ]; then \
        extras="embedded"; \
        pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"; \
    fi; \
    python3 scripts/image/requirements.py $extras > /tmp/requirements.txt; \
    pip install --requirement /tmp/requirements.txt; \
    if [ "$INCLUDE_EMBEDDING_MODEL" = "true" ]; then \
        pip uninstall --yes triton cuda-bindings cuda-pathfinder; \
        python3 scripts/image/cpu-only-torch.py /opt/memory-operator/lib/python3*/site-packages; \
        python3 -c "import sentence_transformers, torch; assert not torch.cuda.is_available()"; \
    fi
COPY scripts/image/bytecode.py scripts/image/
COPY operator/ operator/
# The package itself; then pip leaves the environment (the image installs nothing at run time), and
# compiled bytecode stays for the modules the roles import only.
RUN set -eux; \
    pip install --no-deps .; \
    memory-operator --version; \
    pip uninstall --yes pip; \
    python3 scripts/image/bytecode.py /opt/memory-operator

FROM runtime
# No model download, no telemetry, no bytecode writes (the root file system is read-only in the pods);
# HOME points at /tmp, the one writable folder (an emptyDir in every pod the chart and operator make).
# No GPU is ever used: the embedding model runs on the CPU, and torch's GPU libraries are stubs.
ENV PATH=/opt/memory-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MEM0_TELEMETRY=false \
    CUDA_VISIBLE_DEVICES="" \
    HOME=/tmp
COPY --from=build /opt/memory-operator /opt/memory-operator
USER 10001:10001
ENTRYPOINT ["memory-operator"]
CMD ["run"]

# Last: a new revision relabels the image without copying the environment again.
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
