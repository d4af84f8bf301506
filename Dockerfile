# Kustos operator image: slim, non-root, pinned. The entrypoint is the command `make run` uses.
#   docker build -t kustos:0.1.0 .
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 65532 kustos \
 && useradd --system --uid 65532 --gid kustos --home-dir /var/lib/kustos --shell /usr/sbin/nologin kustos \
 && install -d -o kustos -g kustos -m 0700 /var/lib/kustos
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels kustos && rm -rf /wheels
USER 65532:65532
ENV KUSTOS_STORE_URL=sqlite:////var/lib/kustos/kustos.db \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/kustos
EXPOSE 8080 8443 9090
ENTRYPOINT ["kustos", "run"]
