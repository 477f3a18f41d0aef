# syntax=docker/dockerfile:1
# One image for every aigress role: the control plane (`aigress webhook`), the proxy sidecar (`aigress proxy`)
# and the init container (`aigress init`, which needs the iptables binaries below).
#   docker build -t aigress:dev .
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript, then drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY shared ./shared
COPY sidecar ./sidecar
COPY webhook ./webhook
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --no-fund --no-audit

# ---- runtime ----
FROM ${NODE_IMAGE}
# Debian's iptables package ships both backends (iptables-legacy-* and iptables-nft-*, v4 and v6);
# `aigress init` calls the one the node uses by its explicit name.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/aigress
ENV NODE_ENV=production
# package.json carries "type": "module", which the compiled ESM in dist/ needs.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
# the CRDs `aigress check` compares the installed ones with
COPY charts/aigress/crds ./charts/aigress/crds
RUN chmod 0755 bin/aigress.js && ln -s /opt/aigress/bin/aigress.js /usr/local/bin/aigress
# The proxy's identity (shared/constants.ts PROXY_UID/PROXY_GID): its own traffic is exempt from capture.
# The injected aigress-init container overrides this with runAsUser: 0 and NET_ADMIN/NET_RAW.
USER 1500:1500
ENTRYPOINT ["aigress"]
CMD ["--help"]
