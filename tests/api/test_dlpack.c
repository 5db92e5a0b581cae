/* dlpack: batches exported as DLPack tensors. The tensor describes the field exactly (shape,
 * dtype, device, data), its values are the written ones, it stays valid after the batch is
 * released and after the loader is closed, and its slot returns to the ring only when its
 * deleter has run. */
#include <criterion/criterion.h>
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "h5feed.h"

#define ROWS 100
#define COLS 6

static char dir[64], path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/h5feed-dlpack-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/d.h5", dir);
    hfeed_synth_spec spec = {.rows = ROWS, .sample_ndim = 1, .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 16, .gzip_level = 1,
                             .shuffle = 1, .seed = 11, .label_classes = 9};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(path, &spec, err, sizeof err), HFEED_OK, "%s", err);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(dlpack, .init = setup, .fini = teardown);

static hfeed_loader *open_loader(unsigned prefetch)
{
    char json[512], err[HFEED_ERRBUF_SIZE];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"},"
             " {\"name\": \"y\", \"dataset\": \"/labels\", \"dtype\": \"int64\"}],"
             " \"batch_size\": 10, \"workers\": 2, \"prefetch\": %u}",
             path, prefetch);
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json(json, NULL, NULL, NULL, &l, err, sizeof err), HFEED_OK,
                 "%s", err);
    return l;
}

static DLManagedTensor *export_field(hfeed_batch *b, size_t field)
{
    void *out = NULL;
    cr_assert_eq(hfeed_batch_export_dlpack(b, field, &out), HFEED_OK);
    cr_assert_not_null(out);
    return out;
}

/* The features of rows [first, first + n) must be the synthetic values (sequential order). */
static void check_features(const DLManagedTensor *m, uint64_t first)
{
    const DLTensor *t = &m->dl_tensor;
    const float *x = t->data;
    for (int64_t r = 0; r < t->shape[0]; r++)
        for (uint64_t c = 0; c < COLS; c++)
            cr_assert_eq(x[r * COLS + (int64_t)c],
                         (float)hfeed_synth_value(11, first + (uint64_t)r, COLS, c),
                         "row %llu col %llu", (unsigned long long)(first + (uint64_t)r),
                         (unsigned long long)c);
}

Test(dlpack, tensor_describes_the_field_and_holds_its_values)
{
    hfeed_loader *l = open_loader(2);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_tensor tx;
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &tx), HFEED_OK);
    DLManagedTensor *x = export_field(b, 0);
    DLManagedTensor *y = export_field(b, 1);
    const DLTensor *t = &x->dl_tensor;
    cr_assert_eq(t->data, tx.data, "a copy was made");
    cr_assert_eq(t->device.device_type, kDLCPU);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 10);
    cr_assert_eq(t->shape[1], COLS);
    cr_assert_null(t->strides);
    cr_assert_eq(t->byte_offset, 0);
    cr_assert_eq(t->dtype.code, kDLFloat);
    cr_assert_eq(t->dtype.bits, 32);
    cr_assert_eq(t->dtype.lanes, 1);
    cr_assert_eq(y->dl_tensor.dtype.code, kDLInt);
    cr_assert_eq(y->dl_tensor.dtype.bits, 64);
    cr_assert_eq(y->dl_tensor.ndim, 1);
    const int64_t *labels = y->dl_tensor.data;
    for (int64_t r = 0; r < 10; r++) cr_assert_eq(labels[r], r % 9);
    check_features(x, 0);

    /* Released, the batch's tensors stay valid while the run goes on through the other slot. */
    hfeed_batch_release(b);
    for (uint64_t i = 1; i < 6; i++) {
        hfeed_batch *c = NULL;
        cr_assert_eq(hfeed_loader_next(l, &c), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(c, &bi), HFEED_OK);
        cr_assert_eq(bi.index, i);
        hfeed_batch_release(c);
        check_features(x, 0); /* the held slot was not refilled */
    }
    x->deleter(x);
    y->deleter(y);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(dlpack, slots_held_by_exports_are_not_refilled_until_deleted)
{
    hfeed_loader *l = open_loader(2);
    hfeed_batch *b0 = NULL, *b1 = NULL, *b2 = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b0), HFEED_OK);
    DLManagedTensor *x0 = export_field(b0, 0);
    hfeed_batch_release(b0);
    cr_assert_eq(hfeed_loader_next(l, &b1), HFEED_OK);
    DLManagedTensor *x1 = export_field(b1, 0);
    hfeed_batch_release(b1);
    /* Both slots are held by live tensors: the next batch could never be filled. */
    cr_assert_eq(hfeed_loader_next(l, &b2), HFEED_E_BUSY);
    x0->deleter(x0);
    cr_assert_eq(hfeed_loader_next(l, &b2), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    hfeed_batch_info bi;
    cr_assert_eq(hfeed_batch_get_info(b2, &bi), HFEED_OK);
    cr_assert_eq(bi.index, 2);
    check_features(x1, 10);
    hfeed_batch_release(b2);
    x1->deleter(x1);
    /* The rest of the epoch still comes, every batch once. */
    uint64_t batches = 3;
    hfeed_batch *b = NULL;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        batches++;
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END);
    cr_assert_eq(batches, ROWS / 10);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(dlpack, tensor_outlives_the_loader)
{
    hfeed_loader *l = open_loader(3);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    DLManagedTensor *x = export_field(b, 0);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    check_features(x, 0); /* still valid: the deleter frees the loader (ASan/valgrind check) */
    x->deleter(x);
}

Test(dlpack, bad_arguments_are_refused)
{
    hfeed_loader *l = open_loader(2);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    void *out = (void *)&out;
    cr_assert_eq(hfeed_batch_export_dlpack(b, 2, &out), HFEED_E_INVALID_ARG);
    cr_assert_null(out);
    cr_assert_eq(hfeed_batch_export_dlpack(NULL, 0, &out), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_export_dlpack(b, 0, NULL), HFEED_E_INVALID_ARG);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}
