/* status: static descriptions of status codes and dtypes, version and feature queries. */
#include "device.h"
#include "h5feed.h"

/* One list of codes and texts (libuv's X-macro idea), so a new code cannot miss its text. */
#define HFEED__STATUS_LIST(X)                                                    \
    X(HFEED_OK, "success")                                                       \
    X(HFEED_E_INVALID_ARG, "invalid argument")                                   \
    X(HFEED_END, "end of data")                                                  \
    X(HFEED_E_NOMEM, "out of memory")                                            \
    X(HFEED_E_CONFIG, "invalid config")                                          \
    X(HFEED_E_FILE, "file error")                                                \
    X(HFEED_E_DATASET, "dataset error")                                          \
    X(HFEED_E_TYPE, "unsupported or unconvertible type")                         \
    X(HFEED_E_READ, "read error")                                                \
    X(HFEED_E_DEVICE, "device unavailable")                                      \
    X(HFEED_E_BUSY, "busy: batches still borrowed")                              \
    X(HFEED_E_THREAD, "thread error")                                            \
    X(HFEED_E_RANGE, "value out of range")                                       \
    X(HFEED_E_CANCELED, "canceled")

const char *hfeed_strerror(int status)
{
    switch (status) {
#define HFEED__CASE(code, text) \
    case code:                  \
        return text;
        HFEED__STATUS_LIST(HFEED__CASE)
#undef HFEED__CASE
    default:
        return "unknown status code";
    }
}

#define HFEED__DTYPE_LIST(X)                         \
    X(HFEED_DTYPE_FLOAT32, "float32", 4)             \
    X(HFEED_DTYPE_FLOAT64, "float64", 8)             \
    X(HFEED_DTYPE_INT32, "int32", 4)                 \
    X(HFEED_DTYPE_INT64, "int64", 8)                 \
    X(HFEED_DTYPE_INT8, "int8", 1)                   \
    X(HFEED_DTYPE_UINT8, "uint8", 1)                 \
    X(HFEED_DTYPE_INT16, "int16", 2)                 \
    X(HFEED_DTYPE_UINT16, "uint16", 2)               \
    X(HFEED_DTYPE_UINT32, "uint32", 4)               \
    X(HFEED_DTYPE_UINT64, "uint64", 8)               \
    X(HFEED_DTYPE_FLOAT16, "float16", 2)

const char *hfeed_dtype_name(hfeed_dtype dtype)
{
    switch (dtype) {
#define HFEED__CASE(code, name, size) \
    case code:                        \
        return name;
        HFEED__DTYPE_LIST(HFEED__CASE)
#undef HFEED__CASE
    default:
        return "invalid";
    }
}

size_t hfeed_dtype_size(hfeed_dtype dtype)
{
    switch (dtype) {
#define HFEED__CASE(code, name, size) \
    case code:                        \
        return size;
        HFEED__DTYPE_LIST(HFEED__CASE)
#undef HFEED__CASE
    default:
        return 0;
    }
}

unsigned hfeed_version(void)
{
    return HFEED_VERSION_NUMBER;
}

#define HFEED__STR2(x) #x
#define HFEED__STR(x) HFEED__STR2(x)

const char *hfeed_version_string(void)
{
    return HFEED__STR(HFEED_VERSION_MAJOR) "." HFEED__STR(HFEED_VERSION_MINOR) "." HFEED__STR(
        HFEED_VERSION_PATCH);
}

unsigned hfeed_features(void)
{
    return hfeed__device_cuda.built ? HFEED_FEATURE_CUDA : 0u;
}
