# segport in a container: the scheduler by default, the workspace on a volume, a non-root user.
# Build:  docker build -t segport .      (or: podman build / buildah bud -t segport .)
# Guide:  docs/operations.md
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/segport/bin:$PATH \
    SEGPORT_HOME=/var/lib/segport

# segport from this checkout, with the extras a container needs: PostgreSQL and the workers.
COPY . /src
RUN python3 -m venv /opt/segport \
 && /opt/segport/bin/pip install --no-cache-dir "/src[postgres,workers]" \
 && rm -rf /src \
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
