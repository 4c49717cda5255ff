/* The request pipeline: the ordered stages every request passes (see
 * src/stages.c, where the whole flow fits on one screen). */
#ifndef GH_STAGES_H
#define GH_STAGES_H

#include <stdbool.h>

struct gh_req;

/* What a stage's request hook returns. */
enum gh_stage_result {
    GH_STAGE_NEXT,    /* declined: go on with the next stage */
    GH_STAGE_DONE,    /* the stage answered or took the request over */
    GH_STAGE_SUSPEND, /* waiting (Argon2 on the auth service): the same stage runs
                       * again when gh_stages_resume() is called */
};

struct gh_stage {
    const char *name;
    /* Runs on the worker thread with the parsed head. A stage that answers
     * calls gh_conn_reply*() and returns GH_STAGE_DONE; a stage that hands
     * the request to a handler (the proxy) also returns GH_STAGE_DONE. */
    enum gh_stage_result (*on_request)(struct gh_req *req);
};

/* Runs the stages for <req> in order, for the listener kind it came on. */
void gh_stages_run(struct gh_req *req);
/* Runs the stages again from the one that suspended. */
void gh_stages_resume(struct gh_req *req);
/* The log stages, once per request whichever way it ends: the access log
 * (when <answered>: a status was sent), the audit event, the span end and
 * the metrics. */
struct gh_worker;
void gh_stages_end(struct gh_worker *w, struct gh_req *req, bool answered);

#endif
