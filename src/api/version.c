#include "hato.h"
#include "tls/tls.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *hato_version(void)
{
    return STR(HATO_VERSION_MAJOR) "." STR(HATO_VERSION_MINOR) "." STR(HATO_VERSION_PATCH);
}

const char *hato_tls_backend_version(void)
{
    return tls_backend_version();
}
