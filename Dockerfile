# connectzap as a container: `serve` by default, `worker` (or any other command) as the argument.
#   docker build -t connectzap .
#   docker run -p 127.0.0.1:8000:8000 -v connectzap-data:/data connectzap
#   docker build --build-arg PYTHON_IMAGE=my-mirror/python:3.11-slim -t connectzap .   # another base
# Configuration: CONNECTZAP_* environment variables, and/or a TOML file mounted read-only with
# CONNECTZAP_CONFIG pointing at it. State (SQLite, generated keys, sandbox log) lives in /data.
# See docs/deploying.md.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with connectzap and the PostgreSQL driver; the sources stay here -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY connectzap ./connectzap
RUN python -m venv /opt/connectzap \
 && /opt/connectzap/bin/pip install ".[postgres]"

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# A fixed, unprivileged uid/gid, so a volume's owner is the same on every host and rebuild.
RUN groupadd --system --gid 10001 connectzap \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin connectzap \
 && mkdir -p /data /etc/connectzap \
 && chown 10001:10001 /data
COPY --from=build /opt/connectzap /opt/connectzap
COPY deploy/healthcheck.py /opt/connectzap/healthcheck.py
COPY LICENSE /opt/connectzap/LICENSE
ENV PATH=/opt/connectzap/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONNECTZAP_DATA_DIR=/data \
    CONNECTZAP_API__HOST=0.0.0.0 \
    CONNECTZAP_API__PORT=8000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# serve answers /healthz 200 when the database, the channel and the plugins are fine (503 says why
# not). A worker container overrides this with `healthcheck.py --worker` (see compose.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/opt/connectzap/healthcheck.py"]
# connectzap finishes in-flight requests and work on SIGTERM (up to 30 s): give it that long to stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["connectzap"]
CMD ["serve"]
