# Token Warden: `docker build -t tokenwarden .`
#
# Build stage: the same steps CI proves (.ci/run): a locked release build of
# the `tokenwarden` binary. libpq, OpenSSL and SQLite are compiled from
# source (the image's gcc, make and perl suffice) and linked statically.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p server --bin tokenwarden

# Runtime stage: Debian slim (the binary links only libc), no shell tools
# beyond the base image, a non-root user, state in one volume.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tokenwarden \
 && useradd --system --uid 10001 --gid tokenwarden --home-dir /var/lib/tokenwarden \
            --create-home --shell /usr/sbin/nologin tokenwarden \
 && chmod 0700 /var/lib/tokenwarden
COPY --from=build /src/target/release/tokenwarden /usr/local/bin/tokenwarden
USER tokenwarden:tokenwarden
WORKDIR /var/lib/tokenwarden
# SSL_CERT_DIR: the statically linked OpenSSL's own default is /usr/local/ssl;
# with it, `sslrootcert=system` in DATABASE_URL trusts Debian's roots.
ENV TOKENWARDEN_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/tokenwarden/tokenwarden.db \
    TOKENWARDEN_KEYS_DIR=/var/lib/tokenwarden/keys \
    TOKENWARDEN_LOG_FORMAT=json \
    SSL_CERT_DIR=/etc/ssl/certs
VOLUME ["/var/lib/tokenwarden"]
EXPOSE 8080
# SIGTERM starts a graceful shutdown (TOKENWARDEN_SHUTDOWN_TIMEOUT, 30 s by
# default): give `docker stop` more than that, e.g. `docker stop -t 40`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tokenwarden"]
CMD ["serve"]
