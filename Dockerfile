# Build: docker build -t parley .   (no OpenSSL, no system SQLite: one static-ish binary)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/parley

FROM debian:bookworm-slim
# The CA bundle: parley checks Meta's and LLM providers' TLS certificates against the
# system's roots, and refuses to start without any.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 parley && mkdir -p /data && chown parley /data
COPY --from=build /src/target/release/parley /usr/local/bin/parley
USER parley
WORKDIR /data
ENV PARLEY_BIND=0.0.0.0:8080 DATABASE_URL=sqlite:///data/parley.db
EXPOSE 8080
ENTRYPOINT ["parley"]
CMD ["serve"]
