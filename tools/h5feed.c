/* h5feed: the command-line program. Dispatches `h5feed <command> [options]` to the command's
 * entry point in tools/cmd_<verb>.c (git-style) and holds the small helpers the commands share
 * (cmd.h). It uses only the public API in h5feed.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"

struct command {
    const char *name;
    hfeed_cmd_fn run;
    const char *summary;
};

static const struct command commands[] = {
    {"bench", hfeed_cmd_bench,
     "run a loader over every epoch of a config; report speed and digest"},
    {"convert", hfeed_cmd_convert,
     "write a config's pipeline output (casts, transforms, order) to a new HDF5 file"},
    {"inspect", hfeed_cmd_inspect,
     "describe the datasets of HDF5 files; with a config, what each shuffle will cost"},
    {"synth", hfeed_cmd_synth, "write a synthetic HDF5 dataset (/features, /labels)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: h5feed <command> [options]\n"
                 "       h5feed <command> --help\n"
                 "       h5feed --help | --version\n"
                 "\n"
                 "Feeds HDF5 training data to tensors in batches.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n"
                 "Exit status: 0 success, 1 data or runtime failure, 2 usage or config error.\n");
}

static void print_version(void)
{
    const unsigned features = hfeed_features();
    printf("h5feed %d.%d.%d (library %s; cuda: %s)\n", HFEED_VERSION_MAJOR, HFEED_VERSION_MINOR,
           HFEED_VERSION_PATCH, hfeed_version_string(),
           (features & HFEED_FEATURE_CUDA) ? "yes" : "no");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

int hfeed_cmd_exit_code(hfeed_status status)
{
    switch (status) {
    case HFEED_OK:
        return HFEED_EXIT_OK;
    case HFEED_E_CONFIG:
    case HFEED_E_INVALID_ARG:
        return HFEED_EXIT_USAGE;
    default:
        return HFEED_EXIT_FAILURE;
    }
}

/* The most a config file may hold: config_file.c's limit (configs/README.md). */
#define CONFIG_MAX_BYTES ((off_t)16 << 20)

int hfeed_cmd_open_exit_code(hfeed_status status, const char *config_path)
{
    if (status != HFEED_E_FILE || config_path == NULL) return hfeed_cmd_exit_code(status);
    struct stat sb;
    const int unreadable = stat(config_path, &sb) != 0 || S_ISDIR(sb.st_mode) ||
                           access(config_path, R_OK) != 0 ||
                           (S_ISREG(sb.st_mode) && sb.st_size > CONFIG_MAX_BYTES);
    return unreadable ? HFEED_EXIT_USAGE : HFEED_EXIT_FAILURE;
}

void hfeed_cmd_log(void *user, int level, const char *msg)
{
    const int verbose = user != NULL && *(const int *)user != 0;
    if (level >= HFEED_LOG_WARN || verbose) fprintf(stderr, "h5feed: %s\n", msg);
}

int hfeed_cmd_option(int argc, char **argv, int *i, const char *name, const char **value,
                     const char *cmd)
{
    const char *arg = argv[*i];
    const size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0) {
        return 0;
    }
    if (arg[len] == '=') {
        *value = arg + len + 1;
        *i += 1;
        return 1;
    }
    if (arg[len] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "h5feed %s: option %s needs a value\n", cmd, name);
        return -1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}

void hfeed_cmd_json_string(const char *s)
{
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

int hfeed_cmd_parse_u64(const char *text, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9') {
        return -1; /* strtoull would accept a sign or leading space */
    }
    char *end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* A loader keeps every file of a config open (two descriptors each), and a config may name
 * thousands of shard files: the program lifts its own soft RLIMIT_NOFILE to the hard limit, as
 * a process may. (The library never changes process limits; it says when they are too low.) */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl); /* failing leaves the old limit, which is still valid */
}

int main(int argc, char **argv)
{
    raise_descriptor_limit();
    if (argc < 2) {
        print_usage(stderr);
        return HFEED_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_usage(stdout);
        return HFEED_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        print_version();
        return HFEED_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        if (argc == 2) {
            print_usage(stdout);
            return HFEED_EXIT_OK;
        }
        const struct command *c = find_command(argv[2]);
        if (c == NULL) {
            fprintf(stderr, "h5feed: unknown command '%s' (see h5feed --help)\n", argv[2]);
            return HFEED_EXIT_USAGE;
        }
        char help_opt[] = "--help";
        char *help_argv[] = {argv[2], help_opt, NULL};
        return c->run(2, help_argv);
    }
    const struct command *c = find_command(name);
    if (c == NULL) {
        if (name[0] == '-') {
            fprintf(stderr, "h5feed: unknown option '%s' (see h5feed --help)\n", name);
        } else {
            fprintf(stderr, "h5feed: unknown command '%s' (see h5feed --help)\n", name);
        }
        return HFEED_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
