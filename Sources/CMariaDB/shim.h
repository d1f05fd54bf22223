// MariaDB Connector/C (libmariadb-dev): only Sources/sidecar-auth-sql/MariaDB.swift uses it.
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
