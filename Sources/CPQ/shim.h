// libpq (libpq-dev): only Sources/sidecar-auth-sql/PostgreSQL.swift uses it.
#include <libpq-fe.h>
