/* `gatehouse demo`: the gateway on its built-in config, in front of the demo
 * upstream, with curl lines to try. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"
#include "core/runtime.h"

int gh_cmd_demo(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    struct gh_config *cfg = NULL;
    struct gh_runtime rt;
    struct gh_err err = {0};
    char msg[1024];
    unsigned port;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("demo");
            return 0;
        }
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else {
            fprintf(stderr, "gatehouse demo: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    port = gh_demo_upstream_start();
    if (port == 0) {
        fprintf(stderr, "gatehouse demo: cannot start the demo upstream\n");
        return 1;
    }
    if (gh_config_demo(listen, (uint16_t)port, &cfg, &err) != GH_OK) {
        fprintf(stderr, "gatehouse demo: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    if (gh_runtime_start(&rt, cfg, NULL, &err) != GH_OK) {
        fprintf(stderr, "gatehouse demo: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        gh_runtime_release(&rt);
        return 1;
    }
    printf("\n"
           "gatehouse demo is running: the gateway on http://%s, a demo upstream on\n"
           "127.0.0.1:%u, the admin listener on http://%s. Try:\n\n"
           "  curl -i http://%s/hello                 # proxied; see the headers the upstream got\n"
           "  curl -i http://%s/status/503            # upstream status passes through\n"
           "  curl -i -X POST --data-binary @README.md http://%s/upload\n"
           "  curl -i http://%s/slow?ms=300\n"
           "  printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1\\r\\nTransfer-Encoding: "
           "chunked\\r\\n\\r\\n' | nc -q1 %s\n"
           "                                          # request smuggling attempt: 400\n"
           "  curl -s http://%s/readyz\n\n"
           "Access log lines (JSON) follow below. Ctrl-C stops.\n\n",
           listen, port, rt.snap->cfg->admin.addr.text, listen, listen, listen, listen,
           "127.0.0.1 8080", rt.snap->cfg->admin.addr.text);
    fflush(stdout);
    rc = gh_runtime_run(&rt);
    gh_runtime_release(&rt);
    return rc;
}
