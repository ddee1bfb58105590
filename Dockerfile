# Build: docker build -t parley .   (no OpenSSL, no system SQLite: one static-ish binary)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/parley

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 parley && mkdir -p /data && chown parley /data
COPY --from=build /src/target/release/parley /usr/local/bin/parley
USER parley
WORKDIR /data
ENV PARLEY_BIND=0.0.0.0:8080 DATABASE_URL=sqlite:///data/parley.db
EXPOSE 8080
ENTRYPOINT ["parley"]
CMD ["serve"]
