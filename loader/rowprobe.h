/* rowprobe: how the workers read rows that come one at a time (global shuffle), chosen once at
 * open by timing both ways on the loader's own data.
 *
 * A row read alone costs either a pread (a syscall and a copy out of the page cache) or, from
 * the file's read-only mapping, a page fault the first time its pages are touched. Which is
 * cheaper differs between machines of the same kind, and with the page cache's state: on this
 * project's machine converting random 8 KiB rows from a fresh mapping ran at 0.9x pread in one
 * hour and 1.4x in the next (../shared/limits/limit_paths.c, rand_mmap against rand_pread). So
 * the probe converts the rows of a random window of about 512 KiB each way, in a shuffled order
 * (what an epoch of global shuffle does to every part of the file), alternating, ROUNDS times,
 * and takes the mapping only when the best round's cost per row is below MAP_MARGIN of pread's
 * best (other work on the machine only adds time). pread is the way whose cost is the same
 * everywhere, and the one that turns a truncated file into a clean error by itself (reader.c
 * checks the file's size once a batch when it uses the mapping; a truncation during that
 * batch's conversion would still raise SIGBUS). Runs of consecutive rows always use pread
 * (reader.c PIECE_BYTES).
 *
 * The probe reads 2 x 5 windows (5 MiB), one to three milliseconds on cached data, of the first
 * field's first file that the direct path reads without filters. A window found not in the page
 * cache ends the probe with pread (a cold file would time the disk, and be read for nothing).
 * Threads: run once, by the opening thread, before the workers start. */
#ifndef HFEED_ROWPROBE_H
#define HFEED_ROWPROBE_H

#include <stdbool.h>

#include "catalog.h"

struct hfeed__rowprobe {
    bool use_map;      /* rows read one at a time come from the mapping */
    bool probed;       /* false: nothing to probe (no mapped unfiltered source): pread */
    double pread_ns;   /* cost of one row, read with pread and converted (best round) */
    double map_ns;     /* the same, converted straight from the mapping */
    size_t field;      /* the field probed (when probed) */
    size_t file;       /* and its file */
};

/* Times both ways on c's data (see above) and fills *out.
 * Returns: HFEED_OK, or HFEED_E_NOMEM (two row buffers). A read error during the probe is not
 * one: the probe then keeps pread, and the workers meet the error themselves. */
hfeed_status hfeed__rowprobe_run(const struct hfeed__catalog *c, struct hfeed__rowprobe *out,
                                 struct hfeed__err *err);

#endif
