/* gatehouse: the entry point. Everything else starts in src/cli/. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return gh_cli_main(argc, argv);
}
