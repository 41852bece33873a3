#!/bin/sh
# A self-signed certificate for testing TLS on a LAN: nginx/certs/cert.pem and
# key.pem (git-ignored), valid for localhost, 127.0.0.1, ::1, this machine's
# own addresses (where `hostname -I` exists) and every name or address given.
#
#   nginx/gen-certs.sh                      # or: npm run certs
#   nginx/gen-certs.sh 192.168.1.10 iot.lan # add the address the Pi uses
#
# CERT_DIR writes elsewhere; NO_HOST_IPS=1 skips `hostname -I`. Clients must
# trust cert.pem explicitly (a Pi: NODE_EXTRA_CA_CERTS=/path/to/cert.pem).
set -eu
dir=${CERT_DIR:-$(cd "$(dirname "$0")" && pwd)/certs}
mkdir -p "$dir"

host_ips=""
if [ -z "${NO_HOST_IPS:-}" ]; then
    host_ips=$(hostname -I 2>/dev/null || true)
fi

san="DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
for name in "$@" $host_ips; do
    case "$name" in
        *:* | [0-9]*.[0-9]*.[0-9]*.[0-9]*) entry="IP:$name" ;;
        *) entry="DNS:$name" ;;
    esac
    case ",$san," in
        *",$entry,"*) ;;
        *) san="$san,$entry" ;;
    esac
done

# P-256: small, fast on a Pi Zero, accepted everywhere. 825 days: the longest
# validity Apple platforms accept for a TLS server certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=iot-edge LAN test" \
    -addext "subjectAltName=$san" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 600 "$dir/key.pem"
echo "certs: wrote $dir/cert.pem and key.pem for $san"
