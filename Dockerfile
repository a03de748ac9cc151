# The musl plugin for the official KrakenD Docker image, built inside KrakenD's own builder image
# (the same Go release and Alpine as that image), then copied into the image itself:
#
#   docker build --build-arg KRAKEND_VERSION=2.13.8 -t krakend-jwk-aggregator:2.13.8 .
#
# Untested: the machines this project is developed and tested on have no Docker engine. The
# same build without Docker is `make build LIBC=musl` (or `make dist`).
ARG KRAKEND_VERSION=2.13.8

FROM krakend/builder:${KRAKEND_VERSION} AS build
ARG KRAKEND_VERSION
# The build runs on the build platform's CPU (docker buildx --platform linux/arm64 gives an arm64
# plugin; the Makefile's ARCH defaults to the machine's). rustup's default toolchain on Alpine is
# <cpu>-unknown-linux-musl, which ships the musl-built libunwind the Makefile links. Alpine's gcc is
# a musl compiler, hence MUSL_CC=gcc.
RUN apk add --no-cache bash make rustup && rustup-init -y --profile minimal --default-toolchain stable
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN make build LIBC=musl MUSL_CC=gcc KRAKEND_VERSION=${KRAKEND_VERSION}

FROM krakend:${KRAKEND_VERSION}
COPY --from=build /src/build/jwk-aggregator.so /opt/krakend/plugins/jwk-aggregator.so
