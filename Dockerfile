# Tidings gateway image. Multi-stage: build the TypeScript workspace with dev dependencies,
# then keep only production dependencies and the compiled output, run as the unprivileged
# `node` user. Configure with an Aphlict config file (mount it and pass --config=...) and/or
# TIDINGS_* environment variables (TIDINGS_REDIS_URL, TIDINGS_ADMIN_LISTEN, ...).
#
#   docker build -t tidings .
#   docker run -p 22280:22280 -e TIDINGS_ADMIN_LISTEN=0.0.0.0 -p 127.0.0.1:22281:22281 tidings

# ---- build ----
FROM node:20-bookworm-slim AS build
WORKDIR /src
ENV NX_DAEMON=false NX_NO_CLOUD=true NX_SKIP_NX_CACHE=true CI=true
COPY . .
RUN npm ci --no-audit --no-fund --loglevel=error \
 && npx nx run-many -t build --projects=@tidings/gateway --outputStyle=stream \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && mkdir -p /out \
 && cp -a package.json package-lock.json node_modules /out/ \
 && for d in libs/* services/gateway; do \
      mkdir -p /out/$d && cp -a $d/package.json $d/dist /out/$d/ \
      && if [ -d $d/node_modules ]; then cp -a $d/node_modules /out/$d/; fi; \
    done

# ---- runtime ----
FROM node:20-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="tidings" \
      org.opencontainers.image.description="Horizontally scaled notification gateway, a drop-in replacement for Phorge's Aphlict"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /out/ /app/
# Aphlict's ports: clients 22280, admin 22281 (the admin port listens on 127.0.0.1 unless
# TIDINGS_ADMIN_LISTEN says otherwise: it has no authentication, keep it off public networks).
EXPOSE 22280 22281
USER node
STOPSIGNAL SIGTERM
# Liveness: the process serves its admin port. Load balancers use /readyz instead, which also
# turns false while draining and when the Redis bus stops delivering.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TIDINGS_ADMIN_PORT||22281)+'/healthz').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "services/gateway/dist/main.js"]
CMD []
