/* cli_model.c - resolving imported models by fetch-cache name or path, with their feeds. */
#include "cli/cli_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"

/* What a named model brings with it: file, default output and scalar inputs. */
typedef struct named_model {
    const char *name;
    const char *file;   /* under the models cache */
    const char *output; /* default output, or NULL for the first */
    const char *feeds;  /* default feeds, "name=value,..." */
} named_model;

static const named_model NAMED[] = {
    {"selfie", "selfie.json", NULL, ""},
    /* downsample_ratio=1: the base network sees the full frame and RVM's guided-filter
     * refiner is skipped; 0.5 (or less) runs the refiner, for large inputs */
    {"rvm", "rvm.json", "pha", "r1i=0,r2i=0,r3i=0,r4i=0,downsample_ratio=1"},
};

/* Parses "NAME=VALUE" into f; 0 on a malformed feed. */
static int parse_feed(char *s, ams_tfjs_feed *f) {
    char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1]) return 0;
    *eq = 0;
    char *end;
    f->name = s;
    f->value = strtof(eq + 1, &end);
    return *end == 0;
}

int cli_model_resolve(const char *cmd, const char *model, cli_model *m) {
    memset(m, 0, sizeof *m);
    m->name = model;
    const named_model *nm = NULL;
    for (size_t i = 0; i < sizeof NAMED / sizeof NAMED[0]; i++)
        if (!strcmp(NAMED[i].name, model)) nm = &NAMED[i];
    if (!nm) {
        snprintf(m->path, sizeof m->path, "%s", model);
        return CLI_OK;
    }
    const char *root = getenv("AMS_CACHE");
    const char *home = getenv("HOME");
    if (root && root[0]) snprintf(m->path, sizeof m->path, "%s/models/%s", root, nm->file);
    else snprintf(m->path, sizeof m->path, "%s/.cache/ams/models/%s", home ? home : "/tmp", nm->file);
    FILE *f = fopen(m->path, "rb");
    if (!f) {
        ams_err err = {0};
        ams_err_set(&err, AMS_E_NOTFOUND, "model '%s' is not in the cache (%s)", model, m->path);
        return cli_fail(cmd, &err, "run tools/fetch-models first");
    }
    fclose(f);
    m->named = 1;
    m->output = nm->output;
    snprintf(m->feed_buf, sizeof m->feed_buf, "%s", nm->feeds);
    char *save = NULL;
    for (char *tok = strtok_r(m->feed_buf, ",", &save); tok && m->nfeeds < CLI_MAX_FEEDS;
         tok = strtok_r(NULL, ",", &save))
        if (parse_feed(tok, &m->feeds[m->nfeeds])) m->nfeeds++;
    return CLI_OK;
}

int cli_model_feed(const char *cmd, cli_model *m, char *text) {
    ams_tfjs_feed f;
    if (!parse_feed(text, &f)) return cli_usage_error(cmd, "--feed needs NAME=VALUE, got '%s'", text);
    int k = 0;
    while (k < m->nfeeds && strcmp(m->feeds[k].name, f.name)) k++;
    if (k == m->nfeeds) {
        if (m->nfeeds >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d feeds", CLI_MAX_FEEDS);
        m->nfeeds++;
    }
    m->feeds[k] = f;
    return CLI_OK;
}
