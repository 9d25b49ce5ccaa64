# syntax=docker/dockerfile:1
# Worker-Sync image: the official Ray image of the Ray version the project pins, plus Worker-Sync.
#
#   docker build -t worker-sync:0.1.0 .
#   docker run --rm worker-sync:0.1.0 worker-sync --help
#
# The Helm chart runs it as uid 1001 with a read-only root filesystem; HOME and /tmp are emptyDirs.
FROM rayproject/ray:2.60.0-py311

USER root

# A fixed non-root identity (uid/gid 1001) whose home is the only place that needs to be writable
# besides /tmp. The Ray image's Python lives in /home/ray/anaconda3 and stays world-readable.
RUN groupadd --gid 1001 worker-sync \
 && useradd --uid 1001 --gid 1001 --no-log-init --create-home --home-dir /home/worker-sync \
      --shell /bin/bash worker-sync

# Client tools of `worker-sync backup --databases`: pg_dump and mariadb-dump. pg_dump dumps servers of its own
# major and older (back to 9.2), never newer, so it comes from the PostgreSQL project's apt repository (PGDG,
# set up by the postgresql-common package's own script) at PG_CLIENT_MAJOR, at least the newest server major
# the chart targets (PostgreSQL 15+); mariadb-dump is the distribution's mariadb-client. /usr/bin/pg_dump is
# postgresql-common's wrapper, which runs the newest client installed. The apt lists are removed in the same
# layer.
ARG PG_CLIENT_MAJOR=17
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "postgresql-client-${PG_CLIENT_MAJOR}" mariadb-client \
 && pg_dump --version | grep -q " ${PG_CLIENT_MAJOR}\." \
 && mariadb-dump --version \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/worker-sync

# Ray is already in the base image at the version requirements.lock pins; pip adds the rest, each at the
# version the lock names (the same versions `make test` ran against).
# The last step proves uid 1001 can run the installed code (the Ray image's Python is under /home/ray).
COPY pyproject.toml README.md requirements.lock ./
COPY supervisor.py ./
COPY actors ./actors
COPY config ./config
RUN python -m pip install --no-cache-dir --no-compile -c requirements.lock . \
 && worker-sync --help >/dev/null \
 && runuser -u worker-sync -- "$(command -v python)" -c "import ray, actors, config, supervisor"

ENV HOME=/home/worker-sync PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Ray token authentication, stated rather than inherited: Ray 2.60 turns it on by default and the chart
# relies on it. Under KubeRay the token arrives as RAY_AUTH_TOKEN (RayCluster `authOptions`); on a
# laptop the first local `ray.init` writes ~/.ray/auth_token.
ENV RAY_AUTH_MODE=token
# No usage reporting from inside users' clusters.
ENV RAY_USAGE_STATS_ENABLED=0

USER 1001:1001
WORKDIR /home/worker-sync

# The supervisor's HTTP port (/healthz, /readyz, /status, /metrics).
EXPOSE 8080

CMD ["worker-sync", "--help"]
