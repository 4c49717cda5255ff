/* gatehouse: the entry point. Everything else starts in src/cli/. */
#include <curl/curl.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
    int rc;

    /* Once, before any thread: the dispatcher and JWKS fetches use libcurl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
    rc = gh_cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
