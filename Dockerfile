# atlas-bot, the GitHub App, in a container: the webhook server and its workers (`atlas-bot serve`), git, and
# Node.js with the mermaid pinned in bot/mermaid/package-lock.json. State (queue, mirrors, verdict cache, the
# credentials `atlas-bot register` stores, and the workers' code cache, as the installed packages are read-only
# to the bot's user) lives in the ATLAS_DATA_DIR volume.
#
#   docker build -t atlas-bot .
#   docker run -p 8000:8000 -v atlas-data:/data -e ATLAS_APP_ID=… -e ATLAS_WEBHOOK_SECRET=… \
#     -e ATLAS_PRIVATE_KEY_PATH=/data/key.pem atlas-bot
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ATLAS_DATA_DIR=/data \
    ATLAS_MERMAID_CODE_CACHE_DIR=/data/mermaid-code-cache \
    ATLAS_HOST=0.0.0.0 \
    ATLAS_PORT=8000

# git reads the pull requests; Node.js 18 (Debian bookworm's) runs mermaid's parser. Debian's packages follow
# the release's security updates, so they are not pinned to one version here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/atlas-bot
COPY pyproject.toml README.md ./
COPY rules ./rules
COPY bot ./bot
# The bot, then mermaid from the lock file into the installed package (where the workers look for it).
RUN pip install . \
    && npm ci --prefix "$(python -c 'from bot.paths import mermaid_dir; print(mermaid_dir())')" \
       --omit=dev --no-audit --no-fund \
    && npm cache clean --force \
    && rm -rf /opt/atlas-bot

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin atlas \
    && mkdir -p /data \
    && chown atlas /data
# By id, not name: a host resolving ids needs no passwd entry for it.
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ATLAS_PORT', '8000'), timeout=4)"]

CMD ["atlas-bot", "serve"]
