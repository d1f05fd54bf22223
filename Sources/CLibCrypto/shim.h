// The system's OpenSSL libcrypto, for RSA private-key operations only (see
// Sources/SwiftletCore/Listener/SystemRSAKey.swift); TLS itself is swift-nio-ssl's BoringSSL.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
