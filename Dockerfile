# SuperInsights (Rust) container image.
#
#   docker build -t superinsights .
#   docker run -d -p 3000:3000 -v superinsights-data:/data superinsights
#
# Three stages: a Rust toolchain that compiles one release binary, a Node stage that fetches the
# IP-to-country database package.json pins, and a slim Debian runtime that holds the binary and
# that database. Templates, static assets and SQL migrations are compiled into the binary
# (askama, include_str!, sqlx::migrate!), so they are needed in the build stage only.
# See docs/deployment.md for compose, Coolify, backups and upgrades.

# Pinned toolchain; override with --build-arg RUST_VERSION=1.xx. Must be >= rust-version in
# Cargo.toml. The builder and the runtime are both Debian bookworm, so the glibc the binary links
# against is the glibc the runtime has.
ARG RUST_VERSION=1.95

############################################################################################
# Build stage
############################################################################################
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# 1) Dependencies only. With nothing but the manifest and the lock file in this layer, editing the
#    application code does not invalidate the (slow) dependency build. The stubs stand in for every
#    target of the workspace (the library and the server; the si-load tool, a member cargo must
#    find to read the lock file, though only the server is built).
COPY Cargo.toml Cargo.lock ./
# Build settings (SQLite's compile flags) before the dependency build that uses them.
COPY .cargo ./.cargo
COPY si-load/Cargo.toml ./si-load/
RUN mkdir -p src si-load/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > si-load/src/main.rs \
 && : > src/lib.rs \
 && cargo build --release --locked --bin superinsights \
 && rm -rf src \
 # Forget the stub build of this crate. COPY keeps the files' original modification times, which
 # can be older than the stub build, and Cargo would then reuse the stub binary.
 && rm -rf target/release/.fingerprint/superinsights-* \
           target/release/deps/superinsights-* \
           target/release/deps/libsuperinsights-* \
           target/release/superinsights*

# 2) The application. Everything compiled into the binary must be copied here. The final check
#    fails the build if the stub (which prints nothing) was shipped instead of the server.
COPY src ./src
COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
RUN cargo build --release --locked --bin superinsights \
 && strip --strip-all target/release/superinsights \
 && ./target/release/superinsights --version | grep -q '^superinsights '

############################################################################################
# Country database stage
############################################################################################
# The IP-to-country database (IPv4 and IPv6, MaxMind format, redistributable: see
# docs/configuration.md "Countries") is the one npm dependency package.json pins; `npm ci
# --omit=dev` fetches nothing else. The server uses it when GEOIP_DB_PATH is unset.
FROM node:20-bookworm-slim AS countrydb
WORKDIR /countrydb
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && test -s node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb

############################################################################################
# Runtime stage
############################################################################################
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="superinsights" \
      org.opencontainers.image.description="Self-hosted web analytics server, wire-compatible with SuperInsights 1.x" \
      org.opencontainers.image.licenses="MIT"

# ca-certificates: TLS to MongoDB Atlas and other remote services. fonts-dejavu-core: the font
# report PDFs embed (REPORT_PDF_FONT), so non-Latin text survives. No curl: the health check below
# speaks HTTP through bash's /dev/tcp, which the slim image already has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 superinsights \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin superinsights \
 && mkdir -p /app /data \
 && chown 10001:10001 /data

COPY --from=builder /build/target/release/superinsights /usr/local/bin/superinsights
# The default country database and its licence notice (attribution to the NRO).
COPY --from=countrydb /countrydb/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb \
     /countrydb/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/NRO_LICENSE \
     /usr/share/superinsights/

# DATA_DIR holds the SQLite database (unless MONGODB_URI is set), the ingestion spool and its
# dead-letter file: keep it on a volume. HOST must be an IP address; PORT is the listening port.
ENV DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000

WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000

# Healthy = /readyz answers 200 (the store answers its ping; Redis being down does not count).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) drains: in-flight requests finish, queued ingestion is committed or
# spooled, then the process exits. Give it time: see SHUTDOWN_TIMEOUT_SECS in docs/configuration.md.
ENTRYPOINT ["superinsights"]
CMD ["serve"]
