/* main.c - the `ams` program: dispatches to one subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

/* Append a line here for a new subcommand (its file: src/cli/cmd_<name>.c). */
static const ams_command commands[] = {
    {"infer", "run a model on images: .npy in, logits/probabilities .npy out", ams_cmd_infer},
    {"grad", "loss and gradients of a DeepLab model on images and labels", ams_cmd_grad},
    {"info", "list the tensors of a .safetensors file", ams_cmd_info},
    {"bench", "time inference or a training step; JSON on the last line", ams_cmd_bench},
    {"encode", "sample a video and encode it as the H.264 uplink does; JSON last line", ams_cmd_encode},
    {"overlay", "an mp4 (and a PNG) of label masks blended over a video", ams_cmd_overlay},
    {"label", "run a teacher over a video into a resumable label file", ams_cmd_label},
    {"sim", "emulate AMS on a video and teacher labels against link budgets; report", ams_cmd_sim},
    {"segment", "people masks of an image or video with a model: PNG or mp4", ams_cmd_segment},
    {"convert", "a TF.js model or TF checkpoint into safetensors (loadable by infer)", ams_cmd_convert},
    {"keygen", "a client's pre-shared key for the server and the edge", ams_cmd_keygen},
    {"server", "the networked AMS server: sessions, updates, many edges", ams_cmd_server},
    {"edge", "the edge client: student on every frame, uploads, live updates", ams_cmd_edge},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ams <command> [options]   (ams <command> --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    /* OpenMP (the cpu backend's threads) reads OMP_WAIT_POLICY once, at load time. Its
     * default, spinning while waiting, makes a busy or shared machine many times slower
     * (docs/performance.md), so unless the user chose, run again with threads that sleep. */
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
        execv("/proc/self/exe", argv); /* on failure: carry on as we are */
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ams: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
