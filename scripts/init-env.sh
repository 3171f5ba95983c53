#!/bin/sh
# Write .env for `docker compose up` from .env.example, with freshly generated secrets
# (openssl). An existing .env is left alone. Prints the API key once.
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo ".env already exists; leaving it alone" >&2
  exit 0
fi
api_key=$(openssl rand -hex 24)
webhook_secret="whsec_$(openssl rand -base64 32)"
secrets_key=$(openssl rand -base64 32)
admin_key=$(openssl rand -hex 24)
umask 077
sed -e "s|^BATON_API_KEY=.*|BATON_API_KEY=${api_key}|" \
    -e "s|^BATON_WEBHOOK_SECRET=.*|BATON_WEBHOOK_SECRET=${webhook_secret}|" \
    -e "s|^BATON_SECRETS_KEY=.*|BATON_SECRETS_KEY=${secrets_key}|" \
    -e "s|^BATON_ADMIN_API_KEY=.*|BATON_ADMIN_API_KEY=${admin_key}|" \
    .env.example > .env
echo "wrote .env (mode 600); the API key of the default organization: ${api_key}; the platform-admin key (Bull Board, organizations): ${admin_key}"
