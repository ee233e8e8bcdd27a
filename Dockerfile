# Waypoint's container image: the release binary and the shipped model repository, run as a
# user without privileges. Not built by the test suite (no container engine on the test
# machines); `deploy/compose.yaml` and `deploy/k8s/` use it as `waypoint:latest`.
#   docker build -t waypoint .                       # CPU only
#   docker build -t waypoint --build-arg ONNXRUNTIME=1 .   # with ONNX Runtime for users' ONNX models
FROM rust:1.92-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p waypoint && strip target/release/waypoint

FROM debian:bookworm-slim
ARG ONNXRUNTIME=0
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && if [ "$ONNXRUNTIME" = 1 ]; then apt-get install -y --no-install-recommends python3-venv \
      && python3 -m venv /opt/ort && /opt/ort/bin/pip install --no-cache-dir onnxruntime; fi \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /srv/waypoint waypoint
COPY --from=build /src/target/release/waypoint /usr/local/bin/waypoint
COPY --from=build --chown=waypoint /src/models /srv/waypoint/models
USER waypoint
WORKDIR /srv/waypoint
# Outside loopback the server refuses to start without WAYPOINT_API_TOKEN (or
# --insecure-no-auth): pass the token at run time, never bake it into the image.
# (with ONNXRUNTIME=1, Waypoint finds ONNX Runtime in /opt/ort's Python packages)
ENV PATH=/opt/ort/bin:$PATH \
    WAYPOINT_ADDR=0.0.0.0:8080 \
    WAYPOINT_MODEL_REPOSITORY=/srv/waypoint/models \
    WAYPOINT_LOG_FORMAT=json
VOLUME ["/srv/waypoint/models"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8080/v2/health/ready || exit 1
ENTRYPOINT ["waypoint"]
CMD ["serve"]
