#ifndef SWIFTLET_CLDAP_SHIM_H
#define SWIFTLET_CLDAP_SHIM_H

/* OpenLDAP's libldap (libldap-dev) for Swift, used only by
 * Sources/sidecar-auth-ldap/LDAPConnection.swift: the asynchronous operations (ldap_sasl_bind,
 * ldap_search_ext, ldap_result with a timeout), each LDAP handle used by one pool thread at a
 * time. */

#define LDAP_DEPRECATED 0
#include <ldap.h>

/* Macros Swift cannot import (casts, expressions), as plain constants. */
enum {
    SWIFTLET_LDAP_SCOPE_BASE = LDAP_SCOPE_BASE,
    SWIFTLET_LDAP_SCOPE_ONELEVEL = LDAP_SCOPE_ONELEVEL,
    SWIFTLET_LDAP_SCOPE_SUBTREE = LDAP_SCOPE_SUBTREE,
    SWIFTLET_LDAP_RES_SEARCH_ENTRY = LDAP_RES_SEARCH_ENTRY,
    SWIFTLET_LDAP_RES_SEARCH_RESULT = LDAP_RES_SEARCH_RESULT,
    SWIFTLET_LDAP_TLS1_2 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2,
};

#endif
