/* types: how a stored (HDF5) element type is described inside the library, without HDF5.
 * h5io fills it from the file; convert and config read it. */
#ifndef HFEED_TYPES_H
#define HFEED_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#include "h5feed.h"

enum hfeed__type_class {
    HFEED__CLASS_INT = 1,   /* signed two's complement integer */
    HFEED__CLASS_UINT = 2,  /* unsigned integer */
    HFEED__CLASS_FLOAT = 3, /* IEEE 754 binary16/32/64 */
};

/* A stored element type: class, size in bytes (1, 2, 4, 8) and byte order. */
struct hfeed__type {
    enum hfeed__type_class cls;
    size_t size;
    bool big_endian;
};

#endif
