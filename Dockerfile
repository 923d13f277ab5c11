# Builds the impact binary and runs it on a small Debian base.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# make: the jemalloc allocator is built from source by its -sys crate.
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
COPY benches ./benches
RUN cargo build --release --locked --bin impact

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/impact /usr/local/bin/impact
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["impact"]
CMD ["serve", "--data-dir", "/data"]
