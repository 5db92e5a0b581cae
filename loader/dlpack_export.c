/* dlpack_export: a batch's tensors as DLPack tensors, so PyTorch, JAX, CuPy and NumPy take them
 * without a copy. The only file that includes dlpack.h (Debian's libdlpack-dev). CUDA batches
 * export as kDLCUDA tensors of their device.
 *
 * Each export allocates one small record (the DLManagedTensor, its shape, the batch) and holds
 * the batch (batch.h): the slot is not refilled while a framework still uses the tensor, also
 * after the user released the batch or closed the loader. The deleter, which the framework calls
 * once on any thread, frees the record and drops the hold.
 *
 * Stream order: frameworks call the deleter when the tensor is freed on the host, which for a
 * CUDA tensor comes before the kernels that read it have run. An export made for a consumer's
 * stream (hfeed_batch_export_dlpack_on_stream: DLPack's __dlpack__(stream=...)) therefore fences
 * the slot on that stream in its deleter, before dropping its hold; so whichever hold goes last,
 * the slot is refilled only after every stream that used it is done. */
#include <dlpack/dlpack.h>
#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "h5feed.h"

struct export_record {
    DLManagedTensor managed; /* first: the deleter gets this pointer back */
    int64_t shape[HFEED_MAX_SAMPLE_DIMS + 1];
    hfeed_batch *batch;
    bool fence;   /* exported for a consumer's stream */
    void *stream; /* that stream (NULL: the legacy default stream) */
};

static void delete_export(DLManagedTensor *self)
{
    struct export_record *r = (struct export_record *)self;
    hfeed_batch *b = r->batch;
    if (r->fence) (void)hfeed__batch_fence(b, r->stream); /* on failure it synchronised */
    hfeed__free(r);
    hfeed__batch_drop(b);
}

/* DLPack's type code of a dtype; false for none. */
static bool dl_type(hfeed_dtype d, DLDataType *out)
{
    uint8_t code;
    switch (d) {
    case HFEED_DTYPE_FLOAT16:
    case HFEED_DTYPE_FLOAT32:
    case HFEED_DTYPE_FLOAT64: code = kDLFloat; break;
    case HFEED_DTYPE_INT8:
    case HFEED_DTYPE_INT16:
    case HFEED_DTYPE_INT32:
    case HFEED_DTYPE_INT64: code = kDLInt; break;
    case HFEED_DTYPE_UINT8:
    case HFEED_DTYPE_UINT16:
    case HFEED_DTYPE_UINT32:
    case HFEED_DTYPE_UINT64: code = kDLUInt; break;
    default: return false;
    }
    *out = (DLDataType){.code = code, .bits = (uint8_t)(8 * hfeed_dtype_size(d)), .lanes = 1};
    return true;
}

static hfeed_status export_tensor(hfeed_batch *b, size_t field, bool fence, void *stream,
                                  void **out)
{
    if (out != NULL) *out = NULL;
    hfeed_tensor t;
    if (b == NULL || out == NULL || hfeed_batch_get_tensor(b, field, &t) != HFEED_OK)
        return HFEED_E_INVALID_ARG;
    DLDataType type;
    if (!dl_type(t.dtype, &type)) return HFEED_E_INVALID_ARG;
    /* CUDA batches are complete when handed out (upload.h), so the consumer's stream may read
     * them at once; the fake device's memory is host memory. */
    const DLDevice device = t.device == HFEED_DEVICE_CUDA
                                ? (DLDevice){.device_type = kDLCUDA, .device_id = t.device_index}
                                : (DLDevice){.device_type = kDLCPU, .device_id = 0};
    struct export_record *r = hfeed__calloc(1, sizeof *r);
    if (r == NULL) return HFEED_E_NOMEM;
    memcpy(r->shape, t.shape, sizeof r->shape);
    r->batch = b;
    r->fence = fence;
    r->stream = stream;
    r->managed.dl_tensor = (DLTensor){.data = t.data,
                                      .device = device,
                                      .ndim = t.ndim,
                                      .dtype = type,
                                      .shape = r->shape,
                                      .strides = NULL, /* compact, row-major */
                                      .byte_offset = 0};
    r->managed.manager_ctx = r;
    r->managed.deleter = delete_export;
    hfeed__batch_hold(b);
    *out = &r->managed;
    return HFEED_OK;
}

hfeed_status hfeed_batch_export_dlpack(hfeed_batch *b, size_t field, void **out)
{
    return export_tensor(b, field, false, NULL, out);
}

hfeed_status hfeed_batch_export_dlpack_on_stream(hfeed_batch *b, size_t field, void *stream,
                                                 void **out)
{
    return export_tensor(b, field, true, stream, out);
}
