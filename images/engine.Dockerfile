# tiered-engine: the write-ahead command log and key-value state machine,
# served over the Redis protocol. FROM scratch: the static binary from
# scripts/build.sh is the whole image (no base image to pull).
#
#   docker build -f images/engine.Dockerfile -t tiered-engine build/bin
# (scripts/images.sh does this with a context holding only the binary)
#
# The persistence dir is a `tiered` volume mounted at /app/persistence; its
# `archived/` sub-path lives on the archive tier and belongs to the
# snapshotter. The image runs as 1000:1000, the uid/gid the compose file gives
# the volume (`-o uid=1000 -o gid=1000`).
FROM scratch
COPY tiered-engine /usr/local/bin/tiered-engine
ENV TIERED_DIR=/app/persistence \
    TIERED_LISTEN=0.0.0.0:6379 \
    TIERED_METRICS_LISTEN=0.0.0.0:9121 \
    TIERED_ARCHIVE_DIR_NAME=archived \
    NO_COLOR=1
USER 1000:1000
EXPOSE 6379 9121
# SIGTERM: the engine seals its open log and exits cleanly.
STOPSIGNAL SIGTERM
# No shell in the image: the binary checks its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/usr/local/bin/tiered-engine", "health"]
ENTRYPOINT ["/usr/local/bin/tiered-engine"]
