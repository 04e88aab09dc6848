# Lorax++ images. The operator's default LoraxDeployment (engine.device: cuda) needs the CUDA engine:
#   docker build --target engine     -t ghcr.io/lorax-plus/lorax-engine:0.1.0 .   # CUDA (sm_90a: H100/H200)
#   docker build --target engine-cpu -t ghcr.io/lorax-plus/lorax-engine:0.1.0-cpu .  # engine.device: cpu
#   docker build --target operator   -t ghcr.io/lorax-plus/lorax-operator:0.1.0 .
# The tag is the project version (CMakeLists.txt), which is the chart's appVersion and the
# operator's default engine image. All images run as the non-root user 65532.
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
ARG CUDA_VERSION=13-0

FROM debian:12 AS deps
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates curl \
      nlohmann-json3-dev libgtest-dev libgmock-dev libpcre2-dev libutf8proc-dev libopenblas-dev \
      libpistache-dev libcpprest-dev libyaml-cpp-dev libssl-dev prometheus-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Each binary's shared libraries (as the build resolved them), so the runtime stages need no -dev
# packages. libcuda.so.1 is not among them: the NVIDIA container runtime mounts the node's driver.
COPY scripts/bundle-libs /usr/local/bin/bundle-libs

FROM deps AS build
COPY . .
# Builds outside /src: a local build*/ directory in the context would carry another CMakeCache.
RUN cmake -S . -B /tmp/lorax-build -DCMAKE_BUILD_TYPE=Release -DLORAX_CUDA=OFF -DLORAX_BUILD_TESTS=OFF \
    && cmake --build /tmp/lorax-build -j"$(nproc)" --target lorax-operator lorax-engine \
    && bundle-libs /tmp/lorax-build/bin/lorax-operator /out/lorax-operator \
    && bundle-libs /tmp/lorax-build/bin/lorax-engine /out/lorax-engine

FROM deps AS build-cuda
ARG CUDA_REPO
ARG CUDA_VERSION
# nvcc, the CUDA runtime and cuBLAS(Lt) from NVIDIA's Debian 12 repository.
RUN curl -fsSL -o /tmp/keyring.deb ${CUDA_REPO}/cuda-keyring_1.1-1_all.deb && dpkg -i /tmp/keyring.deb \
    && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cuda-nvcc-${CUDA_VERSION} cuda-cudart-dev-${CUDA_VERSION} libcublas-dev-${CUDA_VERSION} \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /tmp/lorax-build -DCMAKE_BUILD_TYPE=Release -DLORAX_CUDA=ON -DLORAX_BUILD_TESTS=OFF \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
    && cmake --build /tmp/lorax-build -j"$(nproc)" --target lorax-engine \
    && bundle-libs /tmp/lorax-build/bin/lorax-engine /out/lorax-engine

FROM debian:12-slim AS operator
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lorax-operator/lib/ /usr/local/lib/lorax/
COPY --from=build /out/lorax-operator/lorax-operator /usr/local/bin/
ENV LD_LIBRARY_PATH=/usr/local/lib/lorax
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/lorax-operator"]

FROM debian:12-slim AS engine-cpu
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lorax-engine/lib/ /usr/local/lib/lorax/
COPY --from=build /out/lorax-engine/lorax-engine /usr/local/bin/
ENV LD_LIBRARY_PATH=/usr/local/lib/lorax HOME=/tmp
USER 65532:65532
EXPOSE 8080
# The operator runs `lorax-engine serve ...` (command + args), so no ENTRYPOINT is forced here.
CMD ["lorax-engine", "--help"]

# Last, so that a plain `docker build .` gives the CUDA engine.
FROM debian:12-slim AS engine
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build-cuda /out/lorax-engine/lib/ /usr/local/lib/lorax/
COPY --from=build-cuda /out/lorax-engine/lorax-engine /usr/local/bin/
# What the NVIDIA container runtime reads to expose the GPUs and mount the driver.
ENV LD_LIBRARY_PATH=/usr/local/lib/lorax HOME=/tmp \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
EXPOSE 8080
CMD ["lorax-engine", "--help"]
