#!/bin/sh
# The impact container's start (docker-compose.yml): writes the service's configuration from
# the environment, then runs it. Nothing secret is written into the image or the compose file:
#   IMPACT_ADMIN_TOKEN_SHA256  sha256 of the admin's bearer token (printf %s "$TOKEN" | sha256sum)
#   IMPACT_NATS_PASSWORD       the service's NATS password (written to a file only impact reads)
#   IMPACT_NATS_URLS           comma-separated NATS URLs (default nats://nats:4222)
#   IMPACT_NATS_REPLICAS       1, or 3 on a cluster
# With --write-only it writes the configuration to $IMPACT_RUN_DIR and stops (for the tests).
set -eu
: "${IMPACT_ADMIN_TOKEN_SHA256:?set IMPACT_ADMIN_TOKEN_SHA256 to the sha256 of the admin token}"
: "${IMPACT_NATS_PASSWORD:?set IMPACT_NATS_PASSWORD, the service's NATS password}"
run="${IMPACT_RUN_DIR:-/tmp/impact}"
urls="${IMPACT_NATS_URLS:-nats://nats:4222}"
mkdir -p "$run"
umask 077
printf %s "$IMPACT_NATS_PASSWORD" > "$run/nats-password"
toml_urls=$(printf %s "$urls" | sed 's/[^,][^,]*/"&"/g; s/,/, /g')
cat > "$run/impact.toml" <<TOML
[nats]
urls = [$toml_urls]
replicas = ${IMPACT_NATS_REPLICAS:-1}
user = "impact"
password_file = "$run/nats-password"
inbox_prefix = "_INBOX_impact"

[[principals]]
name = "admin"
role = "admin"
token_sha256 = "$IMPACT_ADMIN_TOKEN_SHA256"
TOML
if [ "${1:-}" = "--write-only" ]; then
  exit 0
fi
exec impact serve --config "$run/impact.toml" --data-dir /data --http 0.0.0.0:8080
