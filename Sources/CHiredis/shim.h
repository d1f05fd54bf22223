#ifndef SWIFTLET_CHIREDIS_SHIM_H
#define SWIFTLET_CHIREDIS_SHIM_H

/* hiredis (libhiredis-dev) for Swift, used only by Sources/sidecar-auth-redis/Hiredis.swift:
 * the synchronous API (redisConnect*, redisCommandArgv), each context used by one pool
 * thread at a time. */

#include <hiredis/hiredis.h>

#endif
