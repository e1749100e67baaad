# modelfs operator image: `docker build -t modelfs:dev .` (see README, "Install").
# Stage 1 builds the wheel and installs it into /opt/modelfs; stage 2 is the same slim Python with
# only that virtualenv: no compiler, no build tools, no source tree, no test harness (the wheel
# leaves modelfs.testing out: it is the extra modelfs[testing]).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hack/build-venv.sh hack/build-venv.sh
COPY modelfs modelfs
COPY api api
COPY controllers controllers
COPY pkg pkg
RUN hack/build-venv.sh /src /opt/modelfs python3

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelfs" \
      org.opencontainers.image.description="Kubernetes operator for LLM model weights on BaizeAI/dataset" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/modelfs/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/modelfs /opt/modelfs
# A numeric non-root user, so Kubernetes can check runAsNonRoot without a passwd lookup.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["modelfs", "run"]
CMD ["--all-namespaces"]
