#!/bin/sh
# Makes the test TLS files beside this script: a CA (tls_ca.pem) and a node
# certificate it signed for 127.0.0.1 and localhost (tls_node.pem,
# tls_node.key), valid for 100 years, plus an unrelated key
# (tls_other.key) for the key-does-not-match test. For tests only: the
# keys are public. Needs openssl; run from this folder.
set -eu
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj "/CN=ringkv test CA" -keyout tls_ca.key -out tls_ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=ringkv test node" -keyout tls_node.key -out tls_node.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > tls_node.ext
openssl x509 -req -in tls_node.csr -CA tls_ca.pem -CAkey tls_ca.key -CAcreateserial \
    -days 36500 -extfile tls_node.ext -out tls_node.pem
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out tls_other.key
rm -f tls_node.csr tls_node.ext tls_ca.key tls_ca.srl
