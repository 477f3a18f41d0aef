# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build -t aigress:dev .                               the full image: every role (control plane too)
#   docker build --target sidecar -t aigress-sidecar:dev .     the injected one: `aigress proxy` and `aigress init`
#                                                               only, an esbuild bundle instead of node_modules
# (set injection.image to the sidecar image: the chart's injection.image.repository; docs/image.md has the sizes).
# Node 24 LTS, the runtime the images are built and measured for (override with --build-arg NODE_IMAGE=...).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript, then drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The SO_ORIGINAL_DST addon needs a compiler (node-gyp, with the headers that ship in the Node image).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY binding.gyp ./
COPY sidecar/native ./sidecar/native
COPY scripts/build-native.mjs scripts/bundle-sidecar.mjs ./scripts/
# --ignore-scripts + the explicit step: the addon's build must not depend on whether npm runs install scripts.
RUN npm ci --no-fund --no-audit --ignore-scripts && node scripts/build-native.mjs --strict
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY shared ./shared
COPY sidecar ./sidecar
COPY webhook ./webhook
RUN npx tsc -p tsconfig.build.json \
 && node scripts/bundle-sidecar.mjs \
 && npm prune --omit=dev --no-fund --no-audit

# ---- sidecar: the proxy and init bundle, the addon beside it; no node_modules ----
FROM ${NODE_IMAGE} AS sidecar
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx /opt/yarn-* /usr/local/bin/yarn*
WORKDIR /opt/aigress
ENV NODE_ENV=production
COPY --from=build /src/dist-sidecar ./
RUN printf '#!/bin/sh\nexec node /opt/aigress/aigress.mjs "$@"\n' > /usr/local/bin/aigress && chmod 0755 /usr/local/bin/aigress
USER 1500:1500
ENTRYPOINT ["aigress"]
CMD ["--help"]

# ---- runtime: the full image (last, so a plain `docker build` gives it) ----
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
COPY --from=build /src/build/Release/original_dst.node ./build/Release/original_dst.node
RUN chmod 0755 bin/aigress.js && ln -s /opt/aigress/bin/aigress.js /usr/local/bin/aigress
# The proxy's identity (shared/constants.ts PROXY_UID/PROXY_GID): its own traffic is exempt from capture.
# The injected aigress-init container overrides this with runAsUser: 0 and NET_ADMIN/NET_RAW.
USER 1500:1500
ENTRYPOINT ["aigress"]
CMD ["--help"]
