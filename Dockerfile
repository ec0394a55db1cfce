# relud container image: multi-stage on Debian 12 (bookworm-slim).
#   build:   docker build -t relud .            (podman: podman build --format docker -t relud .)
#   run:     docker run --rm -p 127.0.0.1:8080:8080 relud
#   models:  the bundled config/models are in /models; mount your own over it:
#            docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/my-models:/models:ro" relud
# Configuration: every option as env RELUD_<NAME> (-e RELUD_THREADS=2) or as a flag after the
# image name (docker run relud --threads 2). See docs/operations.md.

# ---- build stage: compiler + -dev packages, only `make build/relud` ---------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc g++ libc6-dev make pkg-config binutils \
      libmicrohttpd-dev libopenblas-dev libfast-float-dev zlib1g-dev libgnutls28-dev \
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the daemon is built from (see .dockerignore): edits to tests/docs keep this cache.
COPY Makefile ./
COPY core/ core/
COPY config/ config/
COPY server/ server/
# the web console and the OpenAPI document, compiled into the binary (server/console.c)
COPY web/ web/
RUN make -j"$(nproc)" build/relud \
 && strip --strip-unneeded build/relud \
 && build/relud --version

# ---- runtime stage: shared libraries only, non-root ------------------------------------------
FROM debian:bookworm-slim AS runtime
# libstdc++6: the float<->text shim is C++; curl: the HEALTHCHECK below.
RUN printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n' \
      >/etc/dpkg/dpkg.cfg.d/90-relud-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libopenblas0-pthread libstdc++6 libprotobuf-c1 curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 relud \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin relud
COPY --from=build /src/build/relud /usr/local/bin/relud
COPY config/models/ /models/

# Inside a container relud listens on all interfaces (its own default is 127.0.0.1).
ENV RELUD_HOST=0.0.0.0 \
    RELUD_PORT=8080 \
    RELUD_MODEL_DIR=/models \
    RELUD_LOG_FORMAT=json
EXPOSE 8080
# Numeric user so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# SIGTERM drains: readiness turns 503, requests under way finish, exit 0 within drain_timeout
# (default 30 s). `docker stop` waits only 10 s by default: use `docker stop -t 35`, or
# compose's stop_grace_period / k8s terminationGracePeriodSeconds above drain_timeout.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${RELUD_PORT:-8080}/v2/health/ready" || exit 1
ENTRYPOINT ["/usr/local/bin/relud"]
CMD []
