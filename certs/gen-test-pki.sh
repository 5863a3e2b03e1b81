#!/bin/sh
# Makes the committed TEST STIR/SHAKEN PKI in certs/. NOT FOR PRODUCTION: the private keys are
# public (they are in the repository). Run from anywhere: `sh certs/gen-test-pki.sh`.
#
#   test-sti-ca.pem / .key          test STI-CA root (EC P-256), the default stir.trust_anchors
#   test-intermediate.pem / .key    intermediate CA signed by the root
#   test-sp-leaf.pem / .key         SHAKEN leaf, TNAuthList SPC 1234, signed by the intermediate
#   test-sp-chain.pem               leaf + intermediate, what an x5u server would serve
#   test-rsa-leaf.pub.pem           an RSA public key (PKCS#1) that tests put in an RSA leaf
#
# Requires the openssl command. Certificates are valid for 20 years from the day they are made.
set -eu
cd "$(dirname "$0")"
DAYS=7300
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/ext.cnf" <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
# TNAuthList (RFC 8226): SEQUENCE { spc [0] EXPLICIT IA5String "1234" }
1.3.6.1.5.5.7.1.26 = DER:30:08:A0:06:16:04:31:32:33:34
CNF

openssl ecparam -name prime256v1 -genkey -noout -out test-sti-ca.key
openssl req -new -x509 -key test-sti-ca.key -sha256 -days "$DAYS" \
  -subj "/O=stirgate test PKI - NOT FOR PRODUCTION/CN=stirgate TEST STI-CA root" \
  -extensions ca_ext -config "$tmp/ext.cnf" -out test-sti-ca.pem 2>/dev/null || \
openssl req -new -x509 -key test-sti-ca.key -sha256 -days "$DAYS" \
  -subj "/O=stirgate test PKI - NOT FOR PRODUCTION/CN=stirgate TEST STI-CA root" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out test-sti-ca.pem

openssl ecparam -name prime256v1 -genkey -noout -out test-intermediate.key
openssl req -new -key test-intermediate.key \
  -subj "/O=stirgate test PKI - NOT FOR PRODUCTION/CN=stirgate TEST STI-CA intermediate" \
  -out "$tmp/intermediate.csr"
openssl x509 -req -in "$tmp/intermediate.csr" -CA test-sti-ca.pem -CAkey test-sti-ca.key \
  -CAcreateserial -CAserial "$tmp/serial" -sha256 -days "$DAYS" \
  -extfile "$tmp/ext.cnf" -extensions ca_ext -out test-intermediate.pem 2>/dev/null

openssl ecparam -name prime256v1 -genkey -noout -out test-sp-leaf.key
openssl req -new -key test-sp-leaf.key \
  -subj "/O=stirgate test PKI - NOT FOR PRODUCTION/CN=SHAKEN 1234 TEST" \
  -out "$tmp/leaf.csr"
openssl x509 -req -in "$tmp/leaf.csr" -CA test-intermediate.pem -CAkey test-intermediate.key \
  -CAcreateserial -CAserial "$tmp/serial" -sha256 -days "$DAYS" \
  -extfile "$tmp/ext.cnf" -extensions leaf_ext -out test-sp-leaf.pem 2>/dev/null

cat test-sp-leaf.pem test-intermediate.pem > test-sp-chain.pem

openssl genrsa -out "$tmp/rsa.key" 2048 2>/dev/null
openssl rsa -in "$tmp/rsa.key" -RSAPublicKey_out -out test-rsa-leaf.pub.pem 2>/dev/null

echo "test PKI written to $(pwd) (NOT FOR PRODUCTION)"
