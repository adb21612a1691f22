#!/bin/sh
# mkcerts.sh DIR: test certificates for the TLS tests, made with openssl into DIR:
#   ca.pem ca-key.pem                 the test CA
#   server.pem server-key.pem         signed by it, for 127.0.0.1 / localhost
#   client.pem client-key.pem         signed by it, client authentication
#   other-ca.pem other-client.pem other-client-key.pem   an unrelated CA and its client
# Keys are P-256, PKCS#8, mode 0600; certificates are valid for 2 days.
set -eu
d=$1
cd "$d"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name cn
	key "$1-key.pem"
	openssl req -x509 -new -key "$1-key.pem" -subj "/CN=$2" -days 2 -out "$1.pem" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # name ca cn ext
	key "$1-key.pem"
	openssl req -new -key "$1-key.pem" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
	printf '%s\n' "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial \
		-days 2 -out "$1.pem" -extfile "$1.ext" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}
ca ca "vfile test CA"
leaf server ca 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
leaf client ca vfile-client "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
ca other-ca "unrelated CA"
leaf other-client other-ca vfile-client "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
chmod 0644 ./*.pem
chmod 0600 ./*-key.pem
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
