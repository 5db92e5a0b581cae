/* device_fake: the loader on the fake device's simulated runtime (device_fake.h), for what a real
 * multi-GPU node would punish: which device "cuda" means, a failed switch to the loader's
 * device, a tensor whose deleter gives its slot back while kernels on the consumer's stream
 * still read it, and a teardown that frees device slots still fenced.
 *
 * Each test opens a loader with "device": "fake", attaches a world to its device (loader_impl.h
 * reaches it) and launches "kernels" that read a batch's device memory for a while; the world
 * counts buffers overwritten or freed under a running kernel, and calls that landed in another
 * device's context. */
#include <criterion/criterion.h>
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "device.h"
#include "device_fake.h"
#include "fixtures.h"
#include "h5feed.h"
#include "loader_impl.h"

#define ROWS 600
#define COLS 5
#define PREFETCH 3
#define KERNEL_NS (30 * 1000000u) /* a kernel that reads a batch for 30 ms */

/* Every test reads d.h5 in the fixtures' temp folder (tests/support/fixtures.h). */
static void setup(void)
{
    fx_setup();
    hfeed_synth_spec spec = {.rows = ROWS, .sample_ndim = 1, .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 64, .seed = 9,
                             .label_classes = 7};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(fx_path("d.h5"), &spec, err, sizeof err), HFEED_OK, "%s",
                 err);
}

TestSuite(device_fake, .init = setup, .fini = fx_teardown, .timeout = 60);

/* A loader on the fake device, its device reporting into w (NULL: none). */
static hfeed_loader *open_fake(struct hfeed__fake_world *w)
{
    char json[1024], err[HFEED_ERRBUF_SIZE];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"}],"
             " \"batch_size\": 32, \"workers\": 2, \"prefetch\": %d, \"epochs\": 2,"
             " \"shuffle\": \"none\", \"device\": \"fake\"}",
             fx_path("d.h5"), PREFETCH);
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json(json, NULL, NULL, NULL, &l, err, sizeof err), HFEED_OK,
                 "%s", err);
    if (w != NULL) hfeed__fake_device_attach(l->dev, w);
    return l;
}

static hfeed_tensor tensor_of(hfeed_batch *b)
{
    hfeed_tensor t;
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &t), HFEED_OK);
    return t;
}

/* Takes n batches, releasing each at once. */
static void take(hfeed_loader *l, int n)
{
    for (int i = 0; i < n; i++) {
        hfeed_batch *b = NULL;
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        hfeed_batch_release(b);
    }
}

/* "cuda" is the calling thread's current device, as torch's "cuda" is: DDP ranks that called
 * torch.cuda.set_device(rank) and say "cuda" each get their own GPU, not all GPU 0. */
Test(device_fake, cuda_without_an_index_is_the_calling_threads_current_device)
{
    static const struct {
        const char *device;
        int index; /* as parsed: -1 resolves at open */
    } cases[] = {{"cuda", -1}, {"cuda:0", 0}, {"cuda:5", 5}, {"fake", -1}, {"cpu", -1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char json[256];
        snprintf(json, sizeof json, "{\"files\": [\"a.h5\"], \"fields\": [{\"name\": \"x\", "
                 "\"dataset\": \"/x\"}], \"batch_size\": 4, \"device\": \"%s\"}",
                 cases[c].device);
        struct hfeed__config *cfg = NULL;
        struct hfeed__err err = {0};
        cr_assert_eq(hfeed__config_parse(json, "/", NULL, &cfg, &err), HFEED_OK, "%s", err.msg);
        cr_expect_eq(cfg->device_index, cases[c].index, "\"%s\" parsed as device %d",
                     cases[c].device, cfg->device_index);
        hfeed__config_destroy(cfg);
    }
    /* At open the fake device resolves -1 as the CUDA backend does (cudaGetDevice). */
    for (int mine = 0; mine < 3; mine++) {
        hfeed__fake_thread_set_context(mine);
        hfeed_loader *l = open_fake(NULL);
        hfeed_loader_info info;
        cr_assert_eq(hfeed_loader_get_info(l, &info), HFEED_OK);
        cr_expect_eq(info.device_index, mine, "thread on device %d, loader on %d", mine,
                     info.device_index);
        take(l, 2);
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
        cr_expect_eq(hfeed__fake_thread_context(), mine);
    }
}

/* When the loader's device cannot be made current (cudaSetDevice fails: device busy or lost),
 * nothing may run in the caller's context instead: the allocation fails and says so. */
Test(device_fake, a_failed_switch_to_the_loaders_device_runs_nothing_elsewhere)
{
    struct hfeed__fake_world *w = NULL;
    cr_assert_eq(hfeed__fake_world_create(&w), HFEED_OK);
    hfeed__fake_thread_set_context(0);
    struct hfeed__device *d = NULL;
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__device_fake.open(1, 2, 1, &d, &err), HFEED_OK, "%s", err.msg);
    hfeed__fake_device_attach(d, w);
    hfeed__fake_device_fail_bind(d, true);
    void *dev = hfeed__device_fake.dev_alloc(d, 64);
    void *pinned = hfeed__device_fake.host_alloc(d, 64, true);
    cr_expect_null(dev, "device memory was allocated on the caller's device");
    cr_expect_null(pinned, "pinned memory was allocated in the caller's context");
    cr_expect_eq(hfeed__device_fake.fence(d, 0, NULL, &err), HFEED_E_DEVICE);
    hfeed__fake_device_fail_bind(d, false);
    hfeed__device_fake.dev_free(d, dev);
    hfeed__device_fake.host_free(d, pinned, true);
    hfeed__device_fake.close(d);
    struct hfeed__fake_record rec;
    hfeed__fake_world_get(w, &rec);
    cr_expect_eq(rec.stray_calls, 0, "%llu calls ran on the caller's device",
                 (unsigned long long)rec.stray_calls);
    cr_expect_eq(hfeed__fake_thread_context(), 0);
    hfeed__fake_world_destroy(w);
}

/* A tensor exported for the consumer's stream, kept past its batch (the batch released, the
 * step over) and used by a kernel in a later step, then freed on the host while the kernel still
 * runs (frameworks free on the host at once): its slot must not be refilled before the kernel
 * is done. Once with a stream per field and a batch released on yet another, so that every
 * stream named is waited for, not just the last. */
Test(device_fake, the_last_drop_of_an_exported_tensor_is_fenced_on_its_stream)
{
    struct hfeed__fake_world *w = NULL;
    cr_assert_eq(hfeed__fake_world_create(&w), HFEED_OK);
    hfeed__fake_thread_set_context(0);
    hfeed_loader *l = open_fake(w);
    struct hfeed__fake_stream *s1 = NULL, *s2 = NULL;
    cr_assert_eq(hfeed__fake_stream_create(w, 0, &s1), HFEED_OK);
    cr_assert_eq(hfeed__fake_stream_create(w, 0, &s2), HFEED_OK);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    const hfeed_tensor t = tensor_of(b);
    void *m1 = NULL, *m2 = NULL;
    cr_assert_eq(hfeed_batch_export_dlpack_on_stream(b, 0, s1, &m1), HFEED_OK);
    cr_assert_eq(hfeed_batch_export_dlpack_on_stream(b, 0, s2, &m2), HFEED_OK);
    hfeed_batch_release(b);
    /* A later step: both tensors are read by kernels, then freed on the host. */
    hfeed__fake_stream_launch(s1, t.data, t.nbytes, KERNEL_NS);
    hfeed__fake_stream_launch(s2, t.data, t.nbytes, 2 * KERNEL_NS);
    ((DLManagedTensor *)m1)->deleter(m1);
    ((DLManagedTensor *)m2)->deleter(m2);
    take(l, 2 * PREFETCH); /* the slot comes round again */
    hfeed__fake_stream_sync(s1);
    hfeed__fake_stream_sync(s2);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    struct hfeed__fake_record rec;
    hfeed__fake_world_get(w, &rec);
    cr_expect_eq(rec.kernels_checked, 2);
    cr_expect_eq(rec.overwritten, 0, "%llu kernels read a slot that was refilled under them",
                 (unsigned long long)rec.overwritten);
    hfeed__fake_world_destroy(w);
}

/* A batch released with a fence on the consumer's stream after the loader was closed: the
 * release frees the loader, and with it the device slots; the kernel still reading the batch
 * must finish first. */
Test(device_fake, teardown_waits_for_the_release_fences_before_freeing_device_slots)
{
    struct hfeed__fake_world *w = NULL;
    cr_assert_eq(hfeed__fake_world_create(&w), HFEED_OK);
    hfeed__fake_thread_set_context(0);
    hfeed_loader *l = open_fake(w);
    struct hfeed__fake_stream *s = NULL;
    cr_assert_eq(hfeed__fake_stream_create(w, 0, &s), HFEED_OK);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    const hfeed_tensor t = tensor_of(b);
    hfeed__fake_stream_launch(s, t.data, t.nbytes, KERNEL_NS);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    cr_assert_eq(hfeed_batch_release_on_stream(b, s), HFEED_OK); /* frees the loader */
    hfeed__fake_stream_sync(s);
    struct hfeed__fake_record rec;
    hfeed__fake_world_get(w, &rec);
    cr_expect_eq(rec.freed_in_use, 0, "device memory was freed under a running kernel");
    cr_expect_eq(rec.kernels_checked, 1);
    cr_expect_eq(rec.overwritten, 0);
    hfeed__fake_world_destroy(w);
}
