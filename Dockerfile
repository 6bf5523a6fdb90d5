# syntax=docker/dockerfile:1
# The operator image: `kubetune operator` and nothing else. Only the operator package
# (operator/) goes in, installed from the `kubetune` distribution without the trainer or
# server extras, so the image carries no torch, transformers or CUDA. The trainer and the
# reference server have their own image (trainer_image/Dockerfile).
#
#   docker build -t ghcr.io/kubetune/operator:0.1.0 .
#
# The Helm chart (helm/kubetune) runs it as user 65532 with a read-only root filesystem,
# an emptyDir at /tmp, and every capability dropped.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The distribution's metadata and the operator package only: trainer_image/ and hack/ are
# absent, so the wheel holds the kubetune package alone.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# A virtualenv without pip; the build stage's pip installs into it. Dependencies come from
# the exact pins in pyproject.toml.
RUN python -m venv --without-pip /opt/kubetune \
    && pip --python /opt/kubetune/bin/python install . \
    && /opt/kubetune/bin/python -c "import kubetune.cli"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kubetune operator" \
      org.opencontainers.image.description="Kubernetes control plane for LLM fine-tuning" \
      org.opencontainers.image.source="https://github.com/kubetune/kubetune" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/kubetune /opt/kubetune
# HOME points at the only writable path in the chart's pod (an emptyDir), for libraries
# that look for ~/.config files; the numeric user has no passwd entry and needs none.
ENV PATH=/opt/kubetune/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# Prometheus /metrics and /healthz, /readyz (KUBETUNE_METRICS_PORT, KUBETUNE_HEALTH_PORT).
EXPOSE 8080 8081
ENTRYPOINT ["kubetune", "operator"]
