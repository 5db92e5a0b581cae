/* catalog: the storage checks that stand between a damaged file and H5Dread
 * (hfeed__catalog_storage_fault) and the reasons a valid dataset is read through HDF5
 * (hfeed__catalog_direct_blocker). Both are pure functions of a dataset's description; the
 * loader-level behaviour (an error at open naming file and dataset) is in tests/api/test_errors.c
 * and tests/tool/test_corrupt.py. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"

/* A 3-D int16 dataset, (300, 4, 3), fixed max dims, chunks (64, 4, 3), in a 1 MiB file. */
static struct hfeed__dset_info chunked(void)
{
    struct hfeed__dset_info in = {.type = {.cls = HFEED__CLASS_INT, .size = 2},
                                  .rank = 3,
                                  .dims = {300, 4, 3},
                                  .maxdims = {300, 4, 3},
                                  .layout = HFEED__LAYOUT_CHUNKED,
                                  .chunk = {64, 4, 3}};
    return in;
}

static struct hfeed__dset_storage storage(void)
{
    struct hfeed__dset_storage st = {.contiguous_addr = UINT64_MAX, .file_size = 1u << 20};
    return st;
}

Test(catalog, storage_fault_names_what_hdf5_would_trust)
{
    static const struct {
        const char *what;
        int axis;           /* the chunk dim changed, or -1 */
        uint64_t chunk;     /* its new value */
        uint64_t maxdim;    /* that axis's max dim (UINT64_MAX: unlimited) */
        uint64_t dim;       /* that axis's size */
        const char *needle; /* NULL: no fault */
    } rows[] = {
        {"valid", -1, 0, 0, 0, NULL},
        {"chunk larger than a fixed axis", 1, 37892, 4, 4,
         "chunk dimension 1 is 37892 but axis 1 holds at most 4"},
        {"chunk larger than the sample axis 0", 0, 3360, 300, 300,
         "chunk dimension 0 is 3360 but axis 0 holds at most 300"},
        {"chunk larger than an unlimited axis", 0, 3360, UINT64_MAX, 300, NULL},
        {"chunk larger than an empty axis", 1, 8, 0, 0, NULL},
        {"zero chunk dim", 2, 0, 3, 3, "chunk dimension 2 is 0"},
        {"a chunk of 4 GiB", 0, (UINT64_C(1) << 31), UINT64_MAX, 300,
         "over HDF5's 4 GiB chunk limit"},
        {"a chunk whose size wraps", 0, UINT64_MAX / 2, UINT64_MAX, 300,
         "over HDF5's 4 GiB chunk limit"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct hfeed__dset_info in = chunked();
        const struct hfeed__dset_storage st = storage();
        if (rows[i].axis >= 0) {
            in.chunk[rows[i].axis] = rows[i].chunk;
            in.maxdims[rows[i].axis] = rows[i].maxdim;
            in.dims[rows[i].axis] = rows[i].dim;
        }
        char buf[256] = "";
        const char *got = hfeed__catalog_storage_fault(&in, 24, &st, buf, sizeof buf);
        if (rows[i].needle == NULL) {
            cr_expect_null(got, "%s: %s", rows[i].what, got);
        } else {
            cr_expect_eq(got, buf, "%s: no fault found", rows[i].what);
            cr_expect_not_null(strstr(buf, rows[i].needle), "%s: %s", rows[i].what, buf);
        }
    }
}

Test(catalog, storage_fault_finds_contiguous_data_past_the_end)
{
    struct hfeed__dset_info in = {.type = {.cls = HFEED__CLASS_FLOAT, .size = 8},
                                  .rank = 2,
                                  .dims = {100, 16},
                                  .maxdims = {100, 16},
                                  .layout = HFEED__LAYOUT_CONTIGUOUS};
    struct hfeed__dset_storage st = storage();
    char buf[256];
    const size_t row = 128;
    st.contiguous_addr = 2048;
    st.file_size = 2048 + 100 * row; /* ends exactly at the end of the file */
    cr_expect_null(hfeed__catalog_storage_fault(&in, row, &st, buf, sizeof buf));
    st.file_size -= 1;
    cr_expect_not_null(hfeed__catalog_storage_fault(&in, row, &st, buf, sizeof buf));
    cr_expect_not_null(strstr(buf, "100 rows of 128 bytes at file offset 2048 run past the end "
                                   "of the file (14847 bytes): truncated?"),
                       "%s", buf);
    st.contiguous_addr = UINT64_MAX - 10; /* an address that would wrap a sum */
    cr_expect_not_null(hfeed__catalog_storage_fault(&in, row, &st, buf, sizeof buf));
    st.contiguous_addr = UINT64_MAX; /* never written: every value is the fill value */
    cr_expect_null(hfeed__catalog_storage_fault(&in, row, &st, buf, sizeof buf));
}

Test(catalog, direct_blocker_keeps_valid_storage_hdf5_reads)
{
    struct hfeed__dset_info in = chunked();
    struct hfeed__dset_storage st = storage();
    cr_expect_null(hfeed__catalog_direct_blocker(&in, &st));
    in.chunk[1] = 2;
    cr_expect_null(hfeed__catalog_direct_blocker(&in, &st), "chunks that split samples: direct");
    in = chunked();
    snprintf(st.unsupported, sizeof st.unsupported, "external storage");
    cr_expect_str_eq(hfeed__catalog_direct_blocker(&in, &st), "external storage");
}
