#!/bin/sh
# make-ca.sh DIR: a throwaway test CA and a server certificate signed by it,
# valid for localhost, 127.0.0.1 and ::1.  Writes DIR/ca.crt, DIR/ca.key,
# DIR/server.crt, DIR/server.key, DIR/server-chain.pem (cert + key, for
# servers that want one file).  Also an "other" CA (DIR/other-ca.crt) that
# signed nothing here, so tests can prove verification fails against it.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -f server.crt ] && [ -f other-ca.crt ] && exit 0
days=30
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days $days \
    -subj "/O=hato tests/CN=hato test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days $days \
    -subj "/O=hato tests/CN=unrelated CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj "/O=hato tests/CN=localhost" 2>/dev/null
cat > server.ext <<EXT
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days $days -extfile server.ext 2>/dev/null
cat server.crt server.key > server-chain.pem
chmod 600 ca.key other-ca.key server.key server-chain.pem
rm -f server.csr server.ext
