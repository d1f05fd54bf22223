#ifndef SWIFTLET_CMONGOC_SHIM_H
#define SWIFTLET_CMONGOC_SHIM_H

/* libmongoc and libbson (libmongoc-dev, libbson-dev) for Swift, used only by
 * Sources/sidecar-auth-mongo/Mongoc.swift: a mongoc_client_pool_t, each popped client used
 * by one pool thread at a time. */

#include <mongoc/mongoc.h>

#endif
