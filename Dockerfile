# Lorax++ images (CPU build; the CUDA engine image needs an nvidia/cuda base and LORAX_CUDA=ON).
#   docker build --target operator -t lorax-operator .
#   docker build --target engine   -t lorax-engine .
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      nlohmann-json3-dev libgtest-dev libgmock-dev libpcre2-dev libutf8proc-dev libopenblas-dev \
      libpistache-dev libcpprest-dev libyaml-cpp-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Builds outside /src: a local build*/ directory in the context would carry another CMakeCache.
COPY . .
RUN cmake -S . -B /tmp/lorax-build -DCMAKE_BUILD_TYPE=Release -DLORAX_CUDA=OFF -DLORAX_BUILD_TESTS=OFF \
    && cmake --build /tmp/lorax-build -j"$(nproc)" --target lorax-operator lorax-engine
# Each binary's shared libraries (as the build resolved them), so the runtime stages need no -dev packages.
RUN for b in lorax-operator lorax-engine; do \
      mkdir -p /out/$b/lib && cp /tmp/lorax-build/bin/$b /out/$b/ && \
      ldd /tmp/lorax-build/bin/$b | awk '/=> \//{print $3}' | grep -v -E '/(libc|libm|libpthread|libdl|librt)\.so' \
        | xargs -r -I{} cp -L {} /out/$b/lib/; \
    done

FROM debian:12-slim AS operator
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lorax-operator/lib/ /usr/local/lib/lorax/
COPY --from=build /out/lorax-operator/lorax-operator /usr/local/bin/
ENV LD_LIBRARY_PATH=/usr/local/lib/lorax
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/lorax-operator"]

FROM debian:12-slim AS engine
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lorax-engine/lib/ /usr/local/lib/lorax/
COPY --from=build /out/lorax-engine/lorax-engine /usr/local/bin/
ENV LD_LIBRARY_PATH=/usr/local/lib/lorax
EXPOSE 8080
# The operator runs `lorax-engine serve ...` (command + args), so no ENTRYPOINT is forced here.
CMD ["lorax-engine", "--help"]
