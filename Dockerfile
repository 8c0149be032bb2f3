# Token Warden: `docker build -t tokenwarden .`
#
# Build stage: the same steps CI proves (.ci/run): Debian packages for
# libpq, then a locked release build of the `tokenwarden` binary.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pkg-config libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p server --bin tokenwarden

# Runtime stage: Debian slim (libpq is linked dynamically), no shell tools
# beyond the base image, a non-root user, state in one volume.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tokenwarden \
 && useradd --system --uid 10001 --gid tokenwarden --home-dir /var/lib/tokenwarden \
            --create-home --shell /usr/sbin/nologin tokenwarden \
 && chmod 0700 /var/lib/tokenwarden
COPY --from=build /src/target/release/tokenwarden /usr/local/bin/tokenwarden
USER tokenwarden:tokenwarden
WORKDIR /var/lib/tokenwarden
ENV TOKENWARDEN_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/tokenwarden/tokenwarden.db \
    TOKENWARDEN_KEYS_DIR=/var/lib/tokenwarden/keys \
    TOKENWARDEN_LOG_FORMAT=json
VOLUME ["/var/lib/tokenwarden"]
EXPOSE 8080
# SIGTERM starts a graceful shutdown (TOKENWARDEN_SHUTDOWN_TIMEOUT, 30 s by
# default): give `docker stop` more than that, e.g. `docker stop -t 40`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tokenwarden"]
CMD ["serve"]
