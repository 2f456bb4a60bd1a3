# syntax=docker/dockerfile:1
# One image, both roles: `leakwatch collector` (the default command, non-root) and
# `leakwatch agent` (daemonset.yaml runs it as uid 0 with five capabilities; README "Deploy").
#
# Build stage: TypeScript, the web page and the native addons (better-sqlite3, v8-profiler-next)
# compiled from source against this Node's headers. The same steps run in CI without a
# container engine (test/deploy/dockerfile.test.ts), so keep them plain RUN lines.
FROM node:24-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# No browser download (puppeteer comes in with a dev dependency); addons built here, not fetched.
ENV PUPPETEER_SKIP_DOWNLOAD=1 \
    npm_config_build_from_source=true
# Dependencies first, without their install scripts: this layer is rebuilt only when the
# lockfile changes, not on every source edit.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Now the install scripts (native addons compiled here), then TypeScript and the web page.
RUN npm rebuild
RUN npm run build
RUN npm prune --omit=dev --no-audit --no-fund

# Runtime stage: Node.js 24 LTS on Debian slim, production dependencies only.
FROM node:24-slim
# tini: a real init (signals forwarded, zombies reaped); util-linux: nsenter, with which the
# agent reaches a target's inspector inside the pod's network namespace.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/scripts/healthcheck.mjs ./scripts/healthcheck.mjs
RUN ln -s /app/dist/cli/main.js /usr/local/bin/leakwatch \
 && groupadd --system --gid 10001 leakwatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/leakwatch leakwatch \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/leakwatch
# The collector's user. The agent pod overrides it with runAsUser: 0 (it must read every
# process's /proc entries and added capabilities only take effect for uid 0).
USER 10001:10001
EXPOSE 7070 9101
# Kubernetes uses the manifest's probes; this is for `docker run`. It GETs
# LEAKWATCH_HEALTHCHECK_URL, default the collector's http://127.0.0.1:7070/healthz (for an agent
# set it to http://127.0.0.1:9101/healthz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/scripts/healthcheck.mjs"]
# -s: subreaper, for when tini is not pid 1 (the agent shares the host's PID namespace).
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "node", "/app/dist/cli/main.js"]
CMD ["collector", "--listen=0.0.0.0:7070", "--data-dir=/var/lib/leakwatch/data"]
