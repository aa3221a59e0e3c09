# syntax=docker/dockerfile:1
# One image for every subcommand (agent, ingest, dashboard, standalone, demo, migrate, check,
# validate): a static-enough Rust binary on distroless, as a non-root user, with nothing to write
# on its root filesystem. Build: docker build -t statuspage .  Run: docker run statuspage --help
# standalone and demo keep SQLite on disk: give them a writable volume, e.g.
#   docker run --read-only --tmpfs /tmp -p 8080:8080 statuspage demo --listen 0.0.0.0:8080

# ---- build ----
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The workspace's sources only (the tests are not needed to build the binary). The registry and
# the target directory are cache mounts, so a rebuild compiles only what changed.
COPY Cargo.toml Cargo.lock ./
COPY config ./config
COPY ingest ./ingest
COPY probe-agent ./probe-agent
COPY dashboard ./dashboard
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin statuspage \
 && install -D -m 0755 target/release/statuspage /out/statuspage

# ---- run ----
# glibc and libgcc only (rustls with aws-lc-rs: no OpenSSL); :nonroot runs as UID 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/statuspage /usr/local/bin/statuspage
USER 65532:65532
# dashboard/standalone public port; agent, ingest and dashboard metrics ports.
EXPOSE 8080 9090 9091 9092
ENTRYPOINT ["/usr/local/bin/statuspage"]
CMD ["--help"]
