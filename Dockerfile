# syntax=docker/dockerfile:1
# tenant-exporter container image: built from this repository's sources only, run as a
# non-root user on distroless `cc` (glibc, libgcc, CA certificates, tzdata; no shell, no
# package manager).
#
#   docker build --build-arg TENANT_EXPORTER_REVISION="$(git rev-parse --short=12 HEAD)" \
#     -t tenant-exporter .
#   docker run --rm -p 10020:10020 tenant-exporter --demo
#
# The build stage uses glibc 2.36 (Debian 12) like the runtime image; keep the two on the same
# Debian release. .ci/deploy_checks.sh lints this file with hadolint, checks that every COPY
# source exists and passes .dockerignore, and builds the crate from exactly those files.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# What `cargo build --release` reads, and nothing else. benches/ is not compiled, but cargo
# refuses a manifest whose [[bench]] file is missing; examples/ and tests/ are discovered
# only when present, so they stay out. aws-lc-rs builds its C code with the image's gcc; no
# cmake is needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src/ src/
COPY benches/ benches/
# There is no .git in the build context: build.rs takes the revision from this variable.
# The release profile keeps line tables for backtraces; objcopy compresses them (65 -> 28 MB).
ARG TENANT_EXPORTER_REVISION=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
    && install -D -m 0755 target/release/tenant-exporter /out/usr/local/bin/tenant-exporter \
    && objcopy --compress-debug-sections=zlib /out/usr/local/bin/tenant-exporter \
    && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/tenant-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="tenant-exporter" \
      org.opencontainers.image.description="Prometheus exporter for multi-tenant Cisco Webex, VOSS Automate and Commvault estates" \
      org.opencontainers.image.licenses="Apache-2.0"
# /usr/local/bin/tenant-exporter, and /var/lib/tenant-exporter where the OAuth refresh token
# files live: mount a persistent volume on that directory (not on a single file: rotated
# tokens are written to a temporary file beside it and renamed). It is owned by the runtime
# user (0700; COPY --from keeps owners and modes below the copied directory), so a new named
# volume mounted there inherits that owner.
COPY --from=build /out/ /
# 65532 is distroless' `nonroot` user; numeric, so Kubernetes can verify runAsNonRoot.
# Fewer glibc arenas: a lower steady-state RSS with large estates (benches/README.md).
ENV MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 10020
ENTRYPOINT ["/usr/local/bin/tenant-exporter"]
CMD ["--config.file=/etc/tenant-exporter/tenant-exporter.yml"]
