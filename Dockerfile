# syntax=docker/dockerfile:1
#
# claude-sessions in a container. Build from the repository root:
#
#   docker build -t claude-sessions .
#   docker run -d --name claude-sessions -p 127.0.0.1:9477:9477 \
#     -v "$HOME/.claude:/claude:ro" -v claude-sessions-state:/var/lib/claude-sessions \
#     claude-sessions
#
# Inside the container the daemon listens on 0.0.0.0:9477 (it must, to be reachable
# through Docker's port mapping); publish the port on 127.0.0.1 only, as above and as
# deploy/docker-compose.yml does. See deploy/README.md.

# ---- build ------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the package needs to build (tests, fixtures and benches' data stay out;
# benches/ is listed in Cargo.toml, so cargo wants it present). .git is not sent
# (.dockerignore), so the exporter's build_info reports revision="unknown".
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY src ./src
# The release profile (Cargo.toml) ships no debug info and no symbol table: the binary
# is already stripped when cargo writes it. The profiling profile, which keeps both, is
# never built here; only /out/claude-sessions leaves this stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin claude-sessions \
    && install -D -m 0755 target/release/claude-sessions /out/claude-sessions

# ---- runtime ----------------------------------------------------------------------
FROM debian:bookworm-slim
# A fixed, non-root UID/GID: files it writes in the state volume keep a stable owner.
# /claude is where the host's Claude config folder (~/.claude) is mounted read-only.
RUN groupadd --system --gid 10001 claude-sessions \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin claude-sessions \
    && install -d -m 0700 -o 10001 -g 10001 /var/lib/claude-sessions \
    && install -d -m 0755 /claude
COPY --from=builder /out/claude-sessions /usr/local/bin/claude-sessions
# CA certificates for https:// OTLP endpoints (the slim image has none; the builder
# image's bundle is Debian's ca-certificates).
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

ENV CLAUDE_CONFIG_DIR=/claude \
    CLAUDE_SESSIONS_STATE_DIR=/var/lib/claude-sessions
VOLUME ["/var/lib/claude-sessions"]
USER 10001:10001
EXPOSE 9477

# No curl or wget in the image: bash opens the TCP connection itself (/dev/tcp) and
# sends a plain HTTP/1.0 request. /healthz is 200 as soon as the server listens
# (/readyz waits for the history to be read, which can take a while on first start).
# The port is the one of CMD below: change both together.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9477 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["claude-sessions"]
CMD ["serve", "--web.listen-address", "0.0.0.0:9477", "--state-dir", "/var/lib/claude-sessions"]
