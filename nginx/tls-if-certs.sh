#!/bin/sh
# Mounted into the official nginx image as /docker-entrypoint.d/40-iot-tls-if-certs.sh;
# its entrypoint runs it after rendering the templates (20-envsubst-on-templates.sh).
# TLS is on when the certificate exists (in compose the endpoint makes a pair on its
# first start; nginx/gen-certs.sh or your own pair also do). Then plain HTTP only
# redirects to https, unless PLAIN_HTTP=1 asks for it to proxy as well. Without a
# certificate the TLS server is dropped so nginx still starts, serving plain HTTP.
# nginx/render.mjs applies the same rules outside a container.
set -eu
dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
if [ -f "${TLS_CERT:-}" ] && [ -f "${TLS_KEY:-}" ]; then
    if [ "${PLAIN_HTTP:-0}" = 1 ]; then
        rm -f "$dir/http-redirect.conf"
        echo "$0: TLS on: $TLS_CERT; plain HTTP on too (PLAIN_HTTP=1)"
    else
        rm -f "$dir/http.conf"
        echo "$0: TLS on: $TLS_CERT; plain HTTP redirects to https (PLAIN_HTTP=1 serves it)"
    fi
else
    rm -f "$dir/tls.conf" "$dir/http-redirect.conf"
    echo "$0: no certificate at ${TLS_CERT:-<TLS_CERT unset>}: TLS off, HTTP only"
fi
