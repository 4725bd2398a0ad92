# PostgreSQL 15 with pg_follower_py installed and its worker running beside the
# server. Built by the same bootstrap script as CI and `make test`.
#
# Safe to expose: the cluster is made at the first start (scripts/docker-entrypoint.sh)
# with the superuser password from POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# trust only on the local socket, scram-sha-256 for every network connection.
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        ca-certificates make python3 python3-venv sudo procps \
    && rm -rf /var/lib/apt/lists/*
COPY . /opt/pg_follower_py
WORKDIR /opt/pg_follower_py
RUN bash scripts/bootstrap.sh && rm -rf /var/lib/apt/lists/*
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# The server, and the worker supervised beside it (it waits for the
# extension and reconnects by itself).
CMD ["bash", "scripts/docker-entrypoint.sh"]
