FROM node:20-bookworm-slim
WORKDIR /app
# patches/ before npm ci: its postinstall (patch-package) applies them to node_modules.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev
ENV NODE_ENV=production
CMD ["node", "dist/services/api/main.js"]
