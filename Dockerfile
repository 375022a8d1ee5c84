# intake on the current Node.js LTS. Build: docker build -t intake .
# Run:   docker run -p 8080:8080 -v intake-spool:/var/lib/intake/spool -v intake-data:/var/lib/intake/data intake
FROM node:26-bookworm-slim AS build
WORKDIR /app
# Tool chain for better-sqlite3 when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY web ./web
RUN npm ci && npm prune --omit=dev

FROM node:26-bookworm-slim
ENV NODE_ENV=production \
    INTAKE_HOST=0.0.0.0 \
    INTAKE_PORT=8080 \
    INTAKE_SPOOL=/var/lib/intake/spool \
    INTAKE_DB=sqlite:/var/lib/intake/data/intake.db
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# The dashboard's page, read at start from web/dashboard.
COPY --from=build /app/web ./web
# Migrations are read at run time from src/store/migrations.
COPY --from=build /app/src/store/migrations ./src/store/migrations
RUN mkdir -p /var/lib/intake/spool /var/lib/intake/data && chown -R node:node /var/lib/intake
USER node
VOLUME ["/var/lib/intake/spool", "/var/lib/intake/data"]
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s CMD node -e "fetch('http://127.0.0.1:'+(process.env.INTAKE_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# SIGTERM stops gracefully: readiness fails, in-flight requests finish, the segment is sealed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/intake.js"]
CMD ["start"]
