# tiered-snapshotter: snapshots from completed command logs, archival to the
# archive tier, retention. Runs beside the engine on the same `tiered` volume.
# FROM scratch: the static binary from scripts/build.sh is the whole image.
#
#   docker build -f images/snapshotter.Dockerfile -t tiered-snapshotter build/bin
# (scripts/images.sh does this with a context holding only the binary)
#
# Runs as 1000:1000, the uid/gid the compose file gives the volume, so the
# files it writes under /app/persistence/archived stay readable by the engine.
FROM scratch
COPY tiered-snapshotter /usr/local/bin/tiered-snapshotter
ENV TIERED_DIR=/app/persistence \
    TIERED_METRICS_LISTEN=0.0.0.0:9122 \
    TIERED_ARCHIVE_DIR_NAME=archived \
    NO_COLOR=1
USER 1000:1000
EXPOSE 9122
STOPSIGNAL SIGTERM
# No shell in the image: the binary asks its own /healthz (200 when the last
# pass was clean; 503 before the first pass and after a failed step, e.g. a
# full archive tier).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/tiered-snapshotter", "health"]
ENTRYPOINT ["/usr/local/bin/tiered-snapshotter"]
CMD ["run"]
