#!/bin/sh
# Mounted into the official nginx image as /docker-entrypoint.d/40-iot-tls-if-certs.sh;
# its entrypoint runs it after rendering the templates (20-envsubst-on-templates.sh).
# TLS is on when the certificate exists (nginx/gen-certs.sh makes one): without
# it, drop the rendered TLS server so nginx still starts and serves plain HTTP
# on port 80. nginx/render.mjs applies the same rule outside a container.
set -eu
conf="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}/tls.conf"
if [ -f "${TLS_CERT:-}" ] && [ -f "${TLS_KEY:-}" ]; then
    echo "$0: TLS on: $TLS_CERT"
else
    rm -f "$conf"
    echo "$0: no certificate at ${TLS_CERT:-<TLS_CERT unset>}: TLS off, HTTP only (make one with nginx/gen-certs.sh)"
fi
