# syntax=docker/dockerfile:1
# Build stage: full dependencies, compile TypeScript.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY examples ./examples
RUN npm ci --no-audit --no-fund

# Runtime stage: production dependencies and compiled output only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
USER node
# The route table is mounted as a file (a Kubernetes ConfigMap or a bind mount), not baked in.
ENV STRANGLER_CONFIG=/etc/strangler/routes.yaml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD node -e "require('http').get({host:'127.0.0.1',port:process.env.PORT||8080,path:process.env.HEALTH_PATH||'/healthz'},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
# The Node flags are those of `npm start` (a test keeps them equal): see docs/performance.md.
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/src/cli/index.js"]
CMD ["start"]
