# trustgate: a verifying pull-through registry proxy.
#
#   docker build -t trustgate .
#   docker run --read-only -p 5000:5000 -p 9090:9090 \
#     -v "$PWD/trustgate.yaml:/etc/trustgate/trustgate.yaml:ro" \
#     -v trustgate-cache:/var/cache/trustgate trustgate
#
# The configuration is a mounted file; in it, listen on 0.0.0.0 (server.listen and
# server.admin_listen) and keep the cache in the volume (cache.dir: /var/cache/trustgate).
# The runtime stage alone (`--target runtime`) can take a prebuilt binary: pass
# `--build-arg BINARY_FROM=<image with /out/trustgate and /out/cache/>` (BuildKit then skips
# the Rust build). Base images are build arguments so that mirrors or pinned digests can be
# used: pin them by digest for releases.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY_FROM=build

# --- build: dependencies in a layer of their own, then the crate -------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# A placeholder crate with the real manifest builds every dependency; this layer is reused
# until Cargo.toml or Cargo.lock change.
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/trustgate-* target/release/deps/trustgate-* \
        target/release/deps/libtrustgate-*
COPY src ./src
RUN cargo build --release --locked \
    && mkdir -p /out/cache \
    && cp target/release/trustgate /out/trustgate

# --- where the binary comes from: the build stage, or a prebuilt image -------------------------
FROM ${BINARY_FROM} AS binary

# --- runtime: glibc, CA certificates, no shell, uid 65532 --------------------------------------
FROM ${RUNTIME_BASE} AS runtime
LABEL org.opencontainers.image.title="trustgate" \
      org.opencontainers.image.description="A verifying pull-through container registry proxy (Notary v1 / Docker Content Trust)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binary /out/trustgate /trustgate
# The cache directory, owned by the runtime user, so a fresh volume mounted there inherits it.
COPY --from=binary --chown=65532:65532 /out/cache /var/cache/trustgate
USER 65532:65532
# 5000: the registry API; 9090: /metrics, /healthz, /readyz.
EXPOSE 5000 9090
ENTRYPOINT ["/trustgate", "serve", "--config", "/etc/trustgate/trustgate.yaml"]
