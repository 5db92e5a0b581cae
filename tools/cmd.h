/* cmd: what the files of the h5feed program share, and nothing else.
 *
 * The program is git-style: tools/h5feed.c dispatches `h5feed <command> [options]` to one
 * tools/cmd_<verb>.c per command. The tools use only the public header h5feed.h, as any user of
 * the library would (zstd's programs/ rule): no loader/ header, no HDF5.
 *
 * Exit codes, the same for every command: 0 success, 1 a data or runtime failure, 2 a usage or
 * config error. Error lines go to stderr as `h5feed <command>: <what>: <message>`. */
#ifndef HFEED_TOOLS_CMD_H
#define HFEED_TOOLS_CMD_H

#include <stdint.h>

#include "h5feed.h"

#define HFEED_EXIT_OK 0
#define HFEED_EXIT_FAILURE 1
#define HFEED_EXIT_USAGE 2

/* A command's entry point. argv[0] is the command's name ("bench"); the options follow.
 * Returns: the process exit code (HFEED_EXIT_*). */
typedef int (*hfeed_cmd_fn)(int argc, char **argv);

/* `h5feed bench CONFIG [--json] [--verbose] [--no-digest] [--csv F] [--plot F.svg]
 * [--compute-ms N] [--roofline] [--cold FILE...]`:
 * runs a loader over every configured epoch and reports; with --roofline, first measures what
 * the machine allows each field and reports the run's share of it and what bounds it. */
int hfeed_cmd_bench(int argc, char **argv);

/* `h5feed convert CONFIG [--quiet] [--verbose]`: writes the config's pipeline output with
 * hfeed_convert(). */
int hfeed_cmd_convert(int argc, char **argv);

/* `h5feed synth --out FILE [...]`: writes a synthetic dataset with hfeed_synth_write(). */
int hfeed_cmd_synth(int argc, char **argv);

/* `h5feed inspect FILE... [--config CONFIG] [--json]`: describes every dataset of the files and,
 * with a config, predicts each shuffle mode's read amplification, with warnings. */
int hfeed_cmd_inspect(int argc, char **argv);

/* The exit code for a library status: HFEED_EXIT_USAGE for HFEED_E_CONFIG and
 * HFEED_E_INVALID_ARG (the user asked for something invalid), HFEED_EXIT_OK for HFEED_OK,
 * HFEED_EXIT_FAILURE for everything else. */
int hfeed_cmd_exit_code(hfeed_status status);

/* The exit code for a status from opening the config file at config_path (hfeed_loader_open,
 * hfeed_convert, hfeed_report_create): as hfeed_cmd_exit_code(), except that HFEED_E_FILE is
 * HFEED_EXIT_USAGE when the config file itself cannot be read (missing, unreadable, a
 * directory, larger than the 16 MiB a config may have): the user named the wrong file, as with
 * any other usage mistake. A data file that cannot be read stays HFEED_EXIT_FAILURE. */
int hfeed_cmd_open_exit_code(hfeed_status status, const char *config_path);

/* A log callback (hfeed_log_fn) that prints each line on stderr as "h5feed: <msg>": warnings
 * always, HFEED_LOG_INFO lines (which device "auto" chose, the cache size, fallbacks) only when
 * user points at a non-zero int (the command's --verbose). */
void hfeed_cmd_log(void *user, int level, const char *msg);

/* Matches argv[*i] against the long option `name` ("--rows"), written either as `--rows N` or as
 * `--rows=N`. On a match, *value points at N (borrowed from argv) and *i moves past what was used.
 * Returns: 1 matched, 0 not this option, -1 matched but the value is missing (a message naming
 * the option was printed to stderr, prefixed by `h5feed <cmd>: `). */
int hfeed_cmd_option(int argc, char **argv, int *i, const char *name, const char **value,
                     const char *cmd);

/* Prints s on stdout as a JSON string (quotes, backslashes and control characters escaped;
 * other bytes as they are, so UTF-8 passes through), or `null` when s is NULL. */
void hfeed_cmd_json_string(const char *s);

/* Parses a whole decimal number without sign into *out.
 * Returns: 0 on success, -1 when text is empty, has other characters, or overflows 64 bits. */
int hfeed_cmd_parse_u64(const char *text, uint64_t *out);

#endif
