# The Kustos image: the one definition, for users and for the local node.
#   docker build -t kustos:0.1.0 .                      # FROM the public Python base, PyPI
#   make image                                          # FROM the local Debian base, no index
# BASE is any Debian-like image with python3 (3.11+) and its venv module. Dependencies are
# pinned by constraints.txt. A build without network installs wheels built beforehand into
# .local/wheels (make image: PIP_ARGS="--no-index --find-links=/src/.local/wheels",
# PACKAGE=kustos; the build then runs with --network none).
# The runtime stage is non-root, needs no shell (exec-form entrypoint) and runs with a
# read-only root filesystem (state on the /var/lib/kustos volume, scratch on /tmp).
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_ARGS=""
ARG PACKAGE=/src
COPY . /src
RUN python3 -m venv /opt/kustos \
 && /opt/kustos/bin/pip install --no-cache-dir --no-compile ${PIP_ARGS} \
      --constraint /src/constraints.txt ${PACKAGE} \
 && /opt/kustos/bin/python -m compileall -q /opt/kustos/lib \
 && rm -f /opt/kustos/bin/pip* /opt/kustos/bin/activate*

FROM ${BASE}
COPY --from=build /opt/kustos /opt/kustos
# A passwd entry: Kopf (getpass) and other libraries look the user up.
RUN groupadd --system --gid 65532 kustos \
 && useradd --system --uid 65532 --gid kustos --home-dir /var/lib/kustos \
      --shell /usr/sbin/nologin kustos \
 && install -d -o kustos -g kustos -m 0700 /var/lib/kustos
USER 65532:65532
ENV PATH=/opt/kustos/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/kustos \
    KUSTOS_STORE_URL=sqlite:////var/lib/kustos/kustos.db \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME /var/lib/kustos
EXPOSE 8080 8443 9090
ENTRYPOINT ["/opt/kustos/bin/kustos", "run"]
