/* commands.h - the `ams` subcommands. Each lives in src/cli/cmd_<name>.c and returns
 * the process exit status (0 ok, 1 bad usage, 2 bad input/failure). Only src/cli exits. */
#ifndef AMS_CLI_COMMANDS_H
#define AMS_CLI_COMMANDS_H

typedef struct ams_command {
    const char *name;
    const char *summary;            /* one line for `ams --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} ams_command;

int ams_cmd_infer(int argc, char **argv);
/* `ams infer --model M ...` (imported TF.js models); ams_cmd_infer dispatches to it. */
int ams_cmd_infer_model(int argc, char **argv);
int ams_cmd_grad(int argc, char **argv);
int ams_cmd_info(int argc, char **argv);
int ams_cmd_bench(int argc, char **argv);
int ams_cmd_encode(int argc, char **argv);
int ams_cmd_overlay(int argc, char **argv);
int ams_cmd_label(int argc, char **argv);
int ams_cmd_sim(int argc, char **argv);
int ams_cmd_segment(int argc, char **argv);
int ams_cmd_convert(int argc, char **argv);
int ams_cmd_keygen(int argc, char **argv);
int ams_cmd_server(int argc, char **argv);
int ams_cmd_edge(int argc, char **argv);

#endif
