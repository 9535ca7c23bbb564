# segport in a container: the scheduler by default, the workspace on a volume, a non-root user.
# Build:  docker build -t segport .      (or: podman build / buildah bud -t segport .)
# Guide:  docs/operations.md
ARG PYTHON_IMAGE=python:3.11-slim

# Stage 1 builds segport's wheel from the checkout. Only the wheel leaves this stage: the final
# image holds no layer with the build context (.dockerignore keeps workspaces, config and
# credential files out of the context as well).
FROM ${PYTHON_IMAGE} AS builder
COPY . /src
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

# Stage 2, the image: segport from its wheel, with the extras a container needs (PostgreSQL, workers).
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/segport/bin:$PATH \
    SEGPORT_HOME=/var/lib/segport

COPY --from=builder /wheels/ /tmp/wheels/
RUN set -- /tmp/wheels/segport-*.whl \
 && python3 -m venv /opt/segport \
 && /opt/segport/bin/pip install --no-cache-dir "$1[postgres,workers]" \
 && rm -rf /tmp/wheels \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/segport --shell /usr/sbin/nologin segport \
 && mkdir -p /var/lib/segport \
 && chown segport:segport /var/lib/segport \
 && chmod 0700 /var/lib/segport

USER segport
WORKDIR /var/lib/segport
# The workspace: its database (SQLite), its secret key file and its reject files.
VOLUME ["/var/lib/segport"]
# SIGTERM stops a run cleanly (recorded as interrupted, resumed by the next run): exit 143.
STOPSIGNAL SIGTERM
ENTRYPOINT ["segport"]
CMD ["scheduler"]
