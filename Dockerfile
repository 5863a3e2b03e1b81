# Multi-stage build of stirgate (see docker-compose.yml and docs/operations.md).
#   docker build -t stirgate .                 the runtime image (last stage)
#   docker build --target sipp -t sipp .       SIPp for the compose `load` profile

FROM rust:1-bookworm AS build
WORKDIR /src
# Only what the build reads (the repository's target/ and bench/ stay out of the layers).
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY configs configs
COPY certs certs
RUN cargo build --release --locked -p stirgate

# SIPp (Debian's sip-tester) for load generation; not part of the runtime image.
FROM debian:bookworm-slim AS sipp
RUN apt-get update \
    && apt-get install -y --no-install-recommends sip-tester \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/sipp"]

FROM debian:bookworm-slim
# ca-certificates for https (webhooks, SMS); espeak-ng renders the text-to-speech prompts
# (media.tts_command).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
    && rm -rf /var/lib/apt/lists/*
# A non-root user; the directories below are the mount points of the compose file's named
# volumes (created here so the volumes start out owned by stirgate).
RUN useradd --system --home-dir /var/lib/stirgate --shell /usr/sbin/nologin stirgate \
    && mkdir -p /var/lib/stirgate/voicemail /var/lib/stirgate/lists /var/lib/stirgate/cdr \
        /var/lib/stirgate/cache /etc/stirgate \
    && chown -R stirgate:stirgate /var/lib/stirgate \
    && chmod 0750 /var/lib/stirgate/voicemail
COPY --from=build /src/target/release/stirgate /usr/local/bin/stirgate
# Test trust anchors (NOT for production: mount your STI-CA roots), prompts, example configs.
COPY --from=build /src/certs /usr/share/stirgate/certs
COPY --from=build /src/crates/media/prompts /usr/share/stirgate/prompts
COPY --from=build /src/configs /usr/share/stirgate/configs
# The image's default config is the deployment example; compose mounts its own copy over it.
COPY --from=build /src/configs/stirgate.compose.toml /etc/stirgate/stirgate.toml
USER stirgate
WORKDIR /var/lib/stirgate
# SIP (UDP and TCP), metrics, RTP (media.rtp_ports of configs/stirgate.compose.toml).
EXPOSE 5060/udp 5060/tcp 9091/tcp 20000-20199/udp
ENTRYPOINT ["/usr/local/bin/stirgate"]
CMD ["run", "--config", "/etc/stirgate/stirgate.toml"]
