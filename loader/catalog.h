/* catalog: the config checked against the files' metadata, before the first batch.
 *
 * Expands the file patterns (glob, sorted, in config order), opens each file once and each
 * field's dataset in it, and checks everything a read could later trip on: the dataset exists,
 * its type is supported and converts to the field's dtype, every field has the same number of
 * samples within a file, and a field's sample shape is the same in every file. The result is
 * the plain description the sampler and the reader work from; nothing is read here. */
#ifndef HFEED_CATALOG_H
#define HFEED_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "chunkio.h"
#include "config.h"
#include "convert.h"
#include "h5io.h"

/* Blocks for chunk shuffle of non-chunked datasets hold about this many bytes of the widest
 * field: large enough that a block is read with few calls, small enough to shuffle well. */
#define HFEED__UNCHUNKED_BLOCK_BYTES ((uint64_t)1 << 20)

/* One field in one file. */
struct hfeed__source {
    struct hfeed__h5dset *dset;
    struct hfeed__dset_info info;
    struct hfeed__conv conv;
    size_t stored_row_bytes;      /* bytes of one sample as stored */
    struct hfeed__direct *direct; /* the lock-free path; NULL: read with H5Dread */
};

struct hfeed__field {
    const char *name;    /* borrowed from the config */
    const char *dataset; /* borrowed from the config */
    hfeed_dtype dtype;   /* output dtype ("native" resolved) */
    int sample_ndim;
    uint64_t sample_shape[HFEED_MAX_SAMPLE_DIMS];
    size_t row_elems; /* elements of one sample */
    size_t row_bytes; /* output bytes of one sample */
    size_t max_stored_row_bytes;
    struct hfeed__source *sources; /* one per file */
    /* Its filtered direct sources, which decode chunks into the field's own cache (reader.c): */
    size_t max_chunk_bytes;   /* their largest decoded chunk; 0: none */
    uint64_t filtered_chunks; /* their chunks: the most the field's cache holds */
};

struct hfeed__catalog {
    size_t nfiles;
    struct hfeed__h5file **files;
    int *fds;             /* one read-only descriptor per file for the direct path; -1 */
    const unsigned char **maps; /* each file mapped read-only for the direct path, or NULL */
    uint64_t *map_lens;
    uint64_t *file_start; /* nfiles + 1 prefix sums of samples; [nfiles] = total */
    size_t nfields;
    struct hfeed__field *fields;
    /* chunk shuffle blocks: starts of blocks of rows aligned to the chunking of the field with
     * the most bytes per sample (non-chunked: about 1 MiB of it), never crossing a file. */
    uint64_t *block_starts;
    size_t nblocks;
    size_t max_chunk_bytes;  /* largest decoded chunk of a filtered direct source; 0: none */
    size_t max_stored_chunk; /* largest stored chunk of a filtered direct source */
    size_t max_tile_bytes;   /* largest decoded chunk of a source whose chunks split samples
                              * (placed into slabs: chunkio.h); 0: none */
};

/* Builds the catalog for cfg; log hears, once per dataset, which ones HDF5 reads and why.
 * Returns: HFEED_OK; HFEED_E_FILE, HFEED_E_DATASET, HFEED_E_TYPE or HFEED_E_NOMEM with a
 * message naming the file, dataset and field.
 * Ownership: *out is the caller's; free with hfeed__catalog_close(). It borrows strings from
 * cfg, which must outlive it. */
hfeed_status hfeed__catalog_open(const struct hfeed__config *cfg, const struct hfeed__logger *log,
                                 struct hfeed__catalog **out, struct hfeed__err *err);

/* Bytes every compressed chunk read by the direct path decodes to, all fields (each field's
 * chunks times its largest decoded chunk, as its cache counts them). */
uint64_t hfeed__catalog_chunk_bytes(const struct hfeed__catalog *c);

/* Which file holds global sample `index`, and its row there. */
size_t hfeed__catalog_locate(const struct hfeed__catalog *c, uint64_t index, uint64_t *row);

/* Expands cfg's file patterns as hfeed__catalog_open() does (config order, each pattern's
 * matches sorted; a literal path is kept even when missing), for callers that want the file list
 * without opening a catalog (inspect).
 * Returns: HFEED_OK, HFEED_E_FILE (a pattern matches nothing) or HFEED_E_NOMEM.
 * Ownership: *out (*n paths) is the caller's; free with hfeed__catalog_expand_free(). */
hfeed_status hfeed__catalog_expand(const struct hfeed__config *cfg, char ***out, size_t *n,
                                   struct hfeed__err *err);
void hfeed__catalog_expand_free(char **files, size_t n);

/* Why a dataset with this info and valid storage (hfeed__catalog_storage_fault() found none)
 * cannot take the direct path, for a reason known before its chunk index is read: a static
 * string, or NULL when it can (filters aside: ask hfeed__codec_supports() too). */
const char *hfeed__catalog_direct_blocker(const struct hfeed__dset_info *info,
                                          const struct hfeed__dset_storage *st);

/* Storage that HDF5 would trust but that cannot be right: contiguous data past the end of the
 * file, a zero chunk dimension or one larger than its axis may grow (HDF5 refuses to create
 * those), a chunk of 4 GiB or more. Such a file is damaged, and H5Dread on it can overrun its
 * own buffers, so the loader refuses it whichever path would read it.
 * Returns: NULL, or the reason, written into buf (len bytes). */
const char *hfeed__catalog_storage_fault(const struct hfeed__dset_info *info,
                                         size_t stored_row_bytes,
                                         const struct hfeed__dset_storage *st, char *buf,
                                         size_t len);

/* Closes every dataset and file but keeps the field descriptions (names, shapes, dtypes), for
 * batches that outlive hfeed_loader_close(). NULL is fine. */
void hfeed__catalog_close_files(struct hfeed__catalog *c);

/* Closes datasets and files and frees; NULL and half-built catalogs are fine. */
void hfeed__catalog_close(struct hfeed__catalog *c);

#endif
