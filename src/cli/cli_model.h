/* cli_model.h - imported models by name or path: the models tools/fetch-models caches
 * (selfie, rvm) with their default output and scalar inputs, and --feed NAME=VALUE. */
#ifndef AMS_CLI_MODEL_H
#define AMS_CLI_MODEL_H

#include "ams/tfjs.h"

#define CLI_MAX_FEEDS 32

typedef struct cli_model {
    char path[4096];                     /* the model.json to load */
    const char *name;                    /* as given: a known name or a path */
    int named;                           /* 1 when name is a fetch-cache model */
    const char *output;                  /* default output (signature key), NULL = first */
    ams_tfjs_feed feeds[CLI_MAX_FEEDS];  /* default feeds, then the user's (replacing) */
    int nfeeds;
    char feed_buf[256];                  /* storage of the default feeds' names */
} cli_model;

/* Resolves M: a fetch-cache name (selfie, rvm) becomes ${AMS_CACHE:-~/.cache/ams}/models/
 * <file> with its defaults (rvm: output pha, r1i..r4i = 0, downsample_ratio = 1); anything
 * else is a model.json path. @return CLI_OK, or CLI_FAIL with a message (and a HINT to run
 * tools/fetch-models) printed for a name that is not in the cache. */
int cli_model_resolve(const char *cmd, const char *model, cli_model *m);

/* Adds a --feed "NAME=VALUE" (text is modified in place and must outlive m); a feed of the
 * same name replaces the default. @return CLI_OK, or CLI_USAGE with the message printed. */
int cli_model_feed(const char *cmd, cli_model *m, char *text);

#endif
