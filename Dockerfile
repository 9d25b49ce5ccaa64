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
