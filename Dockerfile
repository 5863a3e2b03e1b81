# Multi-stage build of the stirgate binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p stirgate

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/stirgate stirgate && mkdir -p /var/lib/stirgate && chown stirgate /var/lib/stirgate
COPY --from=build /src/target/release/stirgate /usr/local/bin/stirgate
COPY --from=build /src/certs /usr/share/stirgate/certs
USER stirgate
WORKDIR /var/lib/stirgate
ENTRYPOINT ["/usr/local/bin/stirgate"]
CMD ["run"]
