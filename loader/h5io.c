/* h5io: every HDF5 call, serialised behind one process-wide lock (see h5io.h).
 *
 * The lock `h5_lock` is the library's one allowed mutable global: HDF5 is a process-wide library
 * with process-wide state (and, in a non-thread-safe build, no locking of its own), so the lock
 * that guards it must be process-wide too, shared by every loader. Lock order: h5_lock is a leaf;
 * nothing else is ever acquired while it is held, and no callback runs under it.
 *
 * Every public function here: takes the lock, turns HDF5's automatic error printing off for this
 * thread (error stacks are per thread in thread-safe builds), makes its HDF5 calls, and on failure
 * copies HDF5's error stack into our message before releasing the lock. */
#include "h5io.h"

#include <errno.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

struct hfeed__h5file {
    hid_t id;
    char *path;
    uint64_t size; /* bytes when opened for reading (hfeed__h5_dset_read_rows checks it) */
    int fd;        /* HDF5's own descriptor of it (sec2 driver), for fstat; -1: unknown */
};

struct hfeed__h5dset {
    hid_t id;
    hid_t type; /* the stored type; reads and writes use it, so HDF5 converts nothing */
    int rank;
    hsize_t dims[HFEED__MAX_RANK];
    char *name;
    const struct hfeed__h5file *file;
};

static void lock(void)
{
    pthread_mutex_lock(&h5_lock);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void unlock(void)
{
    pthread_mutex_unlock(&h5_lock);
}

struct stack_text {
    char *buf;
    size_t len, used;
};

static herr_t add_frame(unsigned n, const H5E_error2_t *e, void *data)
{
    struct stack_text *t = data;
    (void)n;
    if (t->used + 1 >= t->len) return 0;
    const int w = snprintf(t->buf + t->used, t->len - t->used, "%s%s(): %s",
                           t->used > 0 ? "; " : "", e->func_name, e->desc ? e->desc : "");
    if (w > 0) t->used += (size_t)w < t->len - t->used ? (size_t)w : t->len - t->used - 1;
    return 0;
}

/* Records the printf-style message followed by HDF5's current error stack, then clears the
 * stack. Lock held. */
static hfeed_status fail_h5(struct hfeed__err *err, hfeed_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hfeed_status fail_h5(struct hfeed__err *err, hfeed_status code, const char *fmt, ...)
{
    char what[HFEED_ERRBUF_SIZE / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char stack[512] = "";
    struct stack_text t = {stack, sizeof stack, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, add_frame, &t);
    H5Eclear2(H5E_DEFAULT);
    return hfeed__err_set(err, code, "%s: %s", what, stack[0] ? stack : "HDF5 gave no details");
}

bool hfeed__h5_threadsafe(void)
{
#ifdef H5_HAVE_THREADSAFE
    return true;
#else
    return false;
#endif
}

static hfeed_status file_new(const char *path, struct hfeed__h5file **out, struct hfeed__err *err)
{
    struct hfeed__h5file *f = hfeed__calloc(1, sizeof *f);
    char *p = hfeed__strdup(path);
    if (f == NULL || p == NULL) {
        hfeed__free(f);
        hfeed__free(p);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "file \"%s\": out of memory", path);
    }
    f->id = H5I_INVALID_HID;
    f->fd = -1;
    f->path = p;
    *out = f;
    return HFEED_OK;
}

/* What a path that is not a regular file is, for the message. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a plain file";
}

hfeed_status hfeed__h5_file_open(const char *path, struct hfeed__h5file **out,
                                 struct hfeed__err *err)
{
    *out = NULL;
    /* HDF5's own text for a missing file is a dozen frames deep; errno says it in one word. */
    struct stat sb;
    if (stat(path, &sb) != 0 || access(path, R_OK) != 0)
        return HFEED__FAIL(err, HFEED_E_FILE, "file \"%s\": %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return HFEED__FAIL(err, HFEED_E_FILE,
                           "file \"%s\": is %s, not a regular file; \"files\" must name HDF5 "
                           "files",
                           path, file_kind(sb.st_mode));
    struct hfeed__h5file *f = NULL;
    HFEED__CHECK(file_new(path, &f, err));
    f->size = (uint64_t)sb.st_size;
    hfeed_status st = HFEED_OK;
    lock();
    /* Opened first, and asked whether it is HDF5 at all only when that fails: the question opens
     * the file once more (0.3 ms a file here). */
    f->id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    void *handle = NULL;
    if (f->id >= 0 && H5Fget_vfd_handle(f->id, H5P_DEFAULT, &handle) >= 0 && handle != NULL)
        f->fd = *(const int *)handle; /* the default (sec2) driver's handle is its descriptor */
    if (f->id < 0) {
        /* H5Fopen's own reasons kept first: the next call clears HDF5's error stack. */
        struct hfeed__err opening = {0};
        st = fail_h5(&opening, HFEED_E_FILE, "file \"%s\": cannot open (truncated or damaged?)",
                     path);
        const htri_t is_h5 = H5Fis_hdf5(path);
        if (is_h5 == 0)
            hfeed__err_set(err, HFEED_E_FILE, "file \"%s\": not an HDF5 file", path);
        else if (is_h5 < 0)
            fail_h5(err, HFEED_E_FILE, "file \"%s\": not an HDF5 file", path);
        else
            hfeed__err_set(err, HFEED_E_FILE, "%s", opening.msg);
    }
    unlock();
    if (st != HFEED_OK) {
        hfeed__h5_file_close(f);
        return st;
    }
    *out = f;
    return HFEED_OK;
}

hfeed_status hfeed__h5_file_create(const char *path, struct hfeed__h5file **out,
                                   struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__h5file *f = NULL;
    HFEED__CHECK(file_new(path, &f, err));
    hfeed_status st = HFEED_OK;
    lock();
    f->id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f->id < 0) st = fail_h5(err, HFEED_E_FILE, "file \"%s\": cannot create", path);
    unlock();
    if (st != HFEED_OK) {
        hfeed__h5_file_close(f);
        return st;
    }
    *out = f;
    return HFEED_OK;
}

void hfeed__h5_file_close(struct hfeed__h5file *f)
{
    if (f == NULL) return;
    if (f->id >= 0) {
        lock();
        H5Fclose(f->id);
        H5Eclear2(H5E_DEFAULT);
        unlock();
    }
    hfeed__free(f->path);
    hfeed__free(f);
}

const char *hfeed__h5_file_path(const struct hfeed__h5file *f)
{
    return f->path;
}

/* IEEE 754 field layout of a float type of `size` bytes: sign pos, exponent pos and size,
 * mantissa pos and size, exponent bias. Anything else (VAX, custom minifloats) is refused. */
static bool is_ieee(hid_t t, size_t size)
{
    static const struct {
        size_t size, spos, epos, esize, mpos, msize, bias;
    } ieee[] = {
        {2, 15, 10, 5, 0, 10, 15}, {4, 31, 23, 8, 0, 23, 127}, {8, 63, 52, 11, 0, 52, 1023}};
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
    const size_t bias = H5Tget_ebias(t);
    for (size_t i = 0; i < sizeof ieee / sizeof ieee[0]; i++) {
        if (ieee[i].size == size)
            return spos == ieee[i].spos && epos == ieee[i].epos && esize == ieee[i].esize &&
                   mpos == ieee[i].mpos && msize == ieee[i].msize && bias == ieee[i].bias &&
                   H5Tget_precision(t) == 8 * size && H5Tget_offset(t) == 0;
    }
    return false;
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER:
        return "integer";
    case H5T_FLOAT:
        return "float";
    case H5T_TIME:
        return "time";
    case H5T_STRING:
        return "string";
    case H5T_BITFIELD:
        return "bitfield";
    case H5T_OPAQUE:
        return "opaque";
    case H5T_COMPOUND:
        return "compound";
    case H5T_REFERENCE:
        return "reference";
    case H5T_ENUM:
        return "enum";
    case H5T_VLEN:
        return "variable-length";
    case H5T_ARRAY:
        return "array";
    default:
        return "unknown";
    }
}

/* Describes a stored type, or explains why we do not read it. Lock held. */
static hfeed_status describe_type(hid_t t, const struct hfeed__h5dset *d, struct hfeed__type *out,
                                  struct hfeed__err *err)
{
    const H5T_class_t cls = H5Tget_class(t);
    const size_t size = H5Tget_size(t);
    const H5T_order_t order = H5Tget_order(t);
    bool ok = (order == H5T_ORDER_LE || order == H5T_ORDER_BE);
    if (cls == H5T_INTEGER) {
        ok = ok && (size == 1 || size == 2 || size == 4 || size == 8) &&
             H5Tget_precision(t) == 8 * size && H5Tget_offset(t) == 0;
        out->cls = H5Tget_sign(t) == H5T_SGN_2 ? HFEED__CLASS_INT : HFEED__CLASS_UINT;
    } else if (cls == H5T_FLOAT) {
        ok = ok && is_ieee(t, size);
        out->cls = HFEED__CLASS_FLOAT;
    } else {
        return hfeed__err_set(err, HFEED_E_TYPE,
                              "file \"%s\" dataset \"%s\": unsupported %s type; h5feed reads "
                              "integer and IEEE float datasets",
                              d->file->path, d->name, class_name(cls));
    }
    if (!ok)
        return hfeed__err_set(err, HFEED_E_TYPE,
                              "file \"%s\" dataset \"%s\": unsupported %zu-byte %s layout "
                              "(need 1/2/4/8-byte integers or IEEE binary16/32/64, LE or BE)",
                              d->file->path, d->name, size, class_name(cls));
    out->size = size;
    out->big_endian = order == H5T_ORDER_BE;
    return HFEED_OK;
}

/* Fills info's shape and layout from the open dataset d. Lock held. */
static hfeed_status describe_shape(struct hfeed__h5dset *d, struct hfeed__dset_info *info,
                                   struct hfeed__err *err)
{
    const char *path = d->file->path;
    const hid_t space = H5Dget_space(d->id);
    if (space < 0)
        return fail_h5(err, HFEED_E_DATASET, "file \"%s\" dataset \"%s\"", path, d->name);
    const int rank = H5Sget_simple_extent_ndims(space);
    const H5S_class_t sclass = H5Sget_simple_extent_type(space);
    hsize_t maxdims[HFEED__MAX_RANK];
    if (rank > 0 && rank <= HFEED__MAX_RANK) H5Sget_simple_extent_dims(space, d->dims, maxdims);
    H5Sclose(space);
    if (sclass != H5S_SIMPLE || rank < 1)
        return hfeed__err_set(err, HFEED_E_DATASET,
                              "file \"%s\" dataset \"%s\": is a scalar or empty dataspace; "
                              "need an array whose first axis indexes samples",
                              path, d->name);
    if (rank > HFEED__MAX_RANK)
        return hfeed__err_set(err, HFEED_E_DATASET,
                              "file \"%s\" dataset \"%s\": rank %d is above the limit of %d", path,
                              d->name, rank, HFEED__MAX_RANK);
    d->rank = rank;
    info->rank = rank;
    for (int i = 0; i < rank; i++) {
        info->dims[i] = d->dims[i];
        info->maxdims[i] = maxdims[i] == H5S_UNLIMITED ? UINT64_MAX : maxdims[i];
    }

    const hid_t dcpl = H5Dget_create_plist(d->id);
    if (dcpl < 0) return fail_h5(err, HFEED_E_DATASET, "file \"%s\" dataset \"%s\"", path, d->name);
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    info->layout = layout == H5D_CONTIGUOUS ? HFEED__LAYOUT_CONTIGUOUS
                   : layout == H5D_CHUNKED  ? HFEED__LAYOUT_CHUNKED
                   : layout == H5D_COMPACT  ? HFEED__LAYOUT_COMPACT
                                            : HFEED__LAYOUT_OTHER;
    if (layout == H5D_CHUNKED) {
        hsize_t chunk[HFEED__MAX_RANK];
        H5Pget_chunk(dcpl, rank, chunk);
        for (int i = 0; i < rank; i++)
            info->chunk[i] = chunk[i];
    }
    H5Pclose(dcpl);
    return HFEED_OK;
}

/* What a "not found" message lists: the first MAX_LISTED datasets of the file, in name order. */
enum { MAX_LISTED = 12 };

struct dset_list {
    char *buf;
    size_t len, used;
    unsigned listed, more;
};

/* The name of a stored element type as numpy spells it ("float64", "uint8"), else its class. */
static void type_name(hid_t t, char *out, size_t len)
{
    const H5T_class_t cls = H5Tget_class(t);
    const size_t bits = 8 * H5Tget_size(t);
    if (cls == H5T_INTEGER)
        snprintf(out, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_2 ? "" : "u", bits);
    else if (cls == H5T_FLOAT)
        snprintf(out, len, "float%zu", bits);
    else
        snprintf(out, len, "%s", class_name(cls));
}

/* H5Lvisit callback: appends "/path (d0, d1) dtype" for each dataset. Lock held. */
static herr_t list_dataset(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    struct dset_list *l = data;
    H5O_info_t oi;
    if (info->type != H5L_TYPE_HARD ||
        H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    if (l->listed == MAX_LISTED || l->used + 80 > l->len) {
        l->more++;
        return 0;
    }
    char shape[160] = "?", type[32] = "?";
    const hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    const hid_t space = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    const hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hsize_t dims[HFEED__MAX_RANK];
    const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank >= 0 && rank <= HFEED__MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) >= 0) {
        size_t o = (size_t)snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < rank && o < sizeof shape; i++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%llu", i ? ", " : "",
                                  (unsigned long long)dims[i]);
        if (o < sizeof shape) snprintf(shape + o, sizeof shape - o, rank == 1 ? ",)" : ")");
    }
    if (t >= 0) type_name(t, type, sizeof type);
    if (t >= 0) H5Tclose(t);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    const int n = snprintf(l->buf + l->used, l->len - l->used, "%s/%s %s %s", l->listed ? ", " : "",
                           name, shape, type);
    if (n > 0) l->used += (size_t)n < l->len - l->used ? (size_t)n : l->len - l->used - 1;
    l->listed++;
    return 0;
}

/* Writes into buf what the file holds, for a "dataset not found" message: "; the file has:
 * /a (10, 3) float32, /b (10,) int64", with ", and N more" past MAX_LISTED, or "; the file has
 * no datasets". Lock held. */
static void describe_contents(hid_t file, char *buf, size_t len)
{
    static const char head[] = "; the file has: ";
    struct dset_list l = {buf, len, sizeof head - 1, 0, 0};
    snprintf(buf, len, "%s", head);
    if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, list_dataset, &l) < 0) {
        H5Eclear2(H5E_DEFAULT);
        buf[0] = '\0';
        return;
    }
    if (l.listed == 0 && l.more == 0)
        snprintf(buf, len, "; the file has no datasets");
    else if (l.more > 0)
        snprintf(buf + l.used, len - l.used, ", and %u more", l.more);
}

hfeed_status hfeed__h5_dset_open(struct hfeed__h5file *f, const char *name,
                                 struct hfeed__h5dset **out, struct hfeed__dset_info *info,
                                 struct hfeed__err *err)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    struct hfeed__h5dset *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "dataset \"%s\": out of memory", name);
    d->id = H5I_INVALID_HID;
    d->type = H5I_INVALID_HID;
    d->file = f;
    d->name = hfeed__strdup(name);
    if (d->name == NULL) {
        hfeed__free(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "dataset \"%s\": out of memory", name);
    }
    hfeed_status st = HFEED_OK;
    lock();
    /* H5Lexists first, so that a missing dataset is one clear sentence, not an HDF5 stack. */
    const htri_t exists =
        name[0] == '/' && name[1] == '\0' ? 0 : H5Lexists(f->id, name, H5P_DEFAULT);
    if (exists <= 0) {
        H5Eclear2(H5E_DEFAULT);
        char has[640];
        describe_contents(f->id, has, sizeof has);
        st = hfeed__err_set(err, HFEED_E_DATASET, "file \"%s\": dataset \"%s\" not found%s",
                            f->path, name, has);
    } else {
        d->id = H5Dopen2(f->id, name, H5P_DEFAULT);
        if (d->id < 0)
            st = fail_h5(err, HFEED_E_DATASET, "file \"%s\": \"%s\" is not a readable dataset",
                         f->path, name);
    }
    if (st == HFEED_OK) {
        d->type = H5Dget_type(d->id);
        st = describe_type(d->type, d, &info->type, err);
    }
    if (st == HFEED_OK) st = describe_shape(d, info, err);
    unlock();
    if (st != HFEED_OK) {
        hfeed__h5_dset_close(d);
        return st;
    }
    *out = d;
    return HFEED_OK;
}

/* Builds an HDF5 type for a stored type description. Lock held. */
static hid_t make_type(struct hfeed__type t)
{
    const hid_t le[2][4] = {{H5T_STD_I8LE, H5T_STD_I16LE, H5T_STD_I32LE, H5T_STD_I64LE},
                            {H5T_STD_U8LE, H5T_STD_U16LE, H5T_STD_U32LE, H5T_STD_U64LE}};
    const size_t which = t.size == 1 ? 0 : t.size == 2 ? 1 : t.size == 4 ? 2 : 3;
    hid_t base;
    if (t.cls == HFEED__CLASS_FLOAT) {
        base = H5Tcopy(t.size == 8 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE);
        if (t.size == 2) { /* binary16: HDF5 1.10 has no predefined type for it */
            H5Tset_fields(base, 15, 10, 5, 0, 10);
            H5Tset_size(base, 2);
            H5Tset_ebias(base, 15);
        }
    } else {
        base = H5Tcopy(le[t.cls == HFEED__CLASS_UINT][which]);
    }
    if (base >= 0) H5Tset_order(base, t.big_endian ? H5T_ORDER_BE : H5T_ORDER_LE);
    return base;
}

hfeed_status hfeed__h5_dset_create(struct hfeed__h5file *f, const char *name,
                                   struct hfeed__type type, int rank, const uint64_t *dims,
                                   uint64_t chunk_rows, int gzip_level, bool shuffle,
                                   bool fletcher32, struct hfeed__h5dset **out,
                                   struct hfeed__err *err)
{
    *out = NULL;
    if (rank < 1 || rank > HFEED__MAX_RANK)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "dataset \"%s\": rank %d", name, rank);
    struct hfeed__h5dset *d = hfeed__calloc(1, sizeof *d);
    char *dname = hfeed__strdup(name);
    if (d == NULL || dname == NULL) {
        hfeed__free(d);
        hfeed__free(dname);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "dataset \"%s\": out of memory", name);
    }
    d->name = dname;
    d->file = f;
    d->rank = rank;
    hsize_t chunk[HFEED__MAX_RANK];
    for (int i = 0; i < rank; i++) {
        d->dims[i] = dims[i];
        chunk[i] = dims[i] > 0 ? dims[i] : 1;
    }
    if (chunk_rows > 0 && chunk[0] > chunk_rows) chunk[0] = chunk_rows;
    hfeed_status st = HFEED_OK;
    lock();
    d->type = make_type(type);
    const hid_t space = H5Screate_simple(rank, d->dims, NULL);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows > 0) {
        H5Pset_chunk(dcpl, rank, chunk);
        if (shuffle) H5Pset_shuffle(dcpl);
        if (gzip_level > 0) H5Pset_deflate(dcpl, (unsigned)gzip_level);
        if (fletcher32) H5Pset_fletcher32(dcpl);
    }
    d->id = H5Dcreate2(f->id, name, d->type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d->id < 0)
        st = fail_h5(err, HFEED_E_FILE, "file \"%s\": cannot create dataset \"%s\"", f->path, name);
    H5Pclose(dcpl);
    H5Sclose(space);
    unlock();
    if (st != HFEED_OK) {
        hfeed__h5_dset_close(d);
        return st;
    }
    *out = d;
    return HFEED_OK;
}

void hfeed__h5_dset_close(struct hfeed__h5dset *d)
{
    if (d == NULL) return;
    lock();
    if (d->type >= 0) H5Tclose(d->type);
    if (d->id >= 0) H5Dclose(d->id);
    H5Eclear2(H5E_DEFAULT);
    unlock();
    hfeed__free(d->name);
    hfeed__free(d);
}

/* Names an HDF5 filter for log lines (H5Pget_filter2's own name may be empty). */
static void filter_name(hid_t dcpl, unsigned i, int id, char *out, size_t len)
{
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    char name[48] = "";
    H5Pget_filter2(dcpl, i, &flags, &ncd, cd, sizeof name, name, NULL);
    snprintf(out, len, "filter %d (%s)", id, name[0] ? name : "unnamed");
}

/* Filters the direct path decodes: deflate, shuffle, fletcher32 (HDF5's ids 1, 2, 3). */
static void describe_filters(hid_t dcpl, struct hfeed__dset_storage *out)
{
    const int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && i < 8; i++) {
        unsigned flags = 0;
        size_t ncd = 0;
        const H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, 0, NULL, NULL);
        out->filters[out->nfilters++] = id;
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32 &&
            out->unsupported[0] == '\0')
            filter_name(dcpl, (unsigned)i, id, out->unsupported, sizeof out->unsupported);
    }
    if (n > 8) snprintf(out->unsupported, sizeof out->unsupported, "%d filters", n);
}

static hfeed_status storage_locked(struct hfeed__h5dset *d, struct hfeed__dset_storage *out)
{
    const hid_t dcpl = H5Dget_create_plist(d->id);
    const hid_t fcpl = H5Fget_create_plist(d->file->id);
    const hid_t fapl = H5Fget_access_plist(d->file->id);
    H5O_info_t oinfo;
    size_t sa = 0, ss = 0;
    hsize_t userblock = 0, fsize = 0;
    hfeed_status st = HFEED_E_DATASET;
    if (H5Tget_size(d->type) <= sizeof out->fill && dcpl >= 0 && fcpl >= 0 && fapl >= 0 &&
        H5Oget_info2(d->id, &oinfo, H5O_INFO_BASIC) >= 0 && H5Pget_sizes(fcpl, &sa, &ss) >= 0 &&
        H5Pget_userblock(fcpl, &userblock) >= 0 && H5Fget_filesize(d->file->id, &fsize) >= 0 &&
        H5Pget_fill_value(dcpl, d->type, out->fill) >= 0) {
        out->header_addr = oinfo.addr;
        out->base_addr = userblock;
        out->sizeof_addr = (unsigned)sa;
        out->sizeof_size = (unsigned)ss;
        out->file_size = fsize;
        const haddr_t off = H5Dget_offset(d->id);
        out->contiguous_addr = off == HADDR_UNDEF ? UINT64_MAX : off;
        describe_filters(dcpl, out);
        if (H5Pget_external_count(dcpl) > 0)
            snprintf(out->unsupported, sizeof out->unsupported, "external storage");
        if (H5Pget_layout(dcpl) == H5D_VIRTUAL)
            snprintf(out->unsupported, sizeof out->unsupported, "virtual layout");
        if (H5Pget_driver(fapl) != H5FD_SEC2)
            snprintf(out->unsupported, sizeof out->unsupported, "non-default file driver");
        st = HFEED_OK;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    return st;
}

hfeed_status hfeed__h5_dset_storage(struct hfeed__h5dset *d, struct hfeed__dset_storage *out,
                                    struct hfeed__err *err)
{
    memset(out, 0, sizeof *out);
    lock();
    hfeed_status st = storage_locked(d, out);
    if (st != HFEED_OK)
        st = fail_h5(err, HFEED_E_DATASET, "file \"%s\" dataset \"%s\": cannot describe storage",
                     d->file->path, d->name);
    unlock();
    return st;
}

/* Selects rows [row, row + nrows) in the file and a matching dense memory space. Lock held. */
static hfeed_status select_rows(const struct hfeed__h5dset *d, uint64_t row, uint64_t nrows,
                                hid_t *fspace, hid_t *mspace)
{
    hsize_t start[HFEED__MAX_RANK] = {0}, count[HFEED__MAX_RANK];
    for (int i = 0; i < d->rank; i++)
        count[i] = d->dims[i];
    start[0] = row;
    count[0] = nrows;
    *fspace = H5Dget_space(d->id);
    *mspace = H5Screate_simple(d->rank, count, NULL);
    if (*fspace < 0 || *mspace < 0 ||
        H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        return HFEED_E_READ;
    return HFEED_OK;
}

/* Reads or writes rows; `what` names the operation for the message. */
static hfeed_status transfer_rows(struct hfeed__h5dset *d, uint64_t row, uint64_t nrows, void *rbuf,
                                  const void *wbuf, hfeed_status fail_code, struct hfeed__err *err)
{
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hfeed_status st = HFEED_OK;
    lock();
    herr_t rc = -1;
    if (select_rows(d, row, nrows, &fspace, &mspace) == HFEED_OK)
        rc = rbuf != NULL ? H5Dread(d->id, d->type, mspace, fspace, H5P_DEFAULT, rbuf)
                          : H5Dwrite(d->id, d->type, mspace, fspace, H5P_DEFAULT, wbuf);
    if (rc < 0) {
        st = fail_h5(err, fail_code, "file \"%s\" dataset \"%s\" rows %llu..%llu: %s failed",
                     d->file->path, d->name, (unsigned long long)row,
                     (unsigned long long)(row + nrows - 1), rbuf != NULL ? "H5Dread" : "H5Dwrite");
    }
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    unlock();
    return st;
}

hfeed_status hfeed__h5_dset_read_rows(struct hfeed__h5dset *d, uint64_t row, uint64_t nrows,
                                      void *dst, struct hfeed__err *err)
{
    HFEED__CHECK(transfer_rows(d, row, nrows, dst, NULL, HFEED_E_READ, err));
    /* HDF5 reads what lies past the end of a file as zeros (its sec2 driver), so a file
     * truncated under the loader would deliver zeros for data: the size is checked after every
     * read (one fstat of HDF5's descriptor; an H5Dread costs far more), and a read that may
     * have crossed the new end is an error. */
    struct stat sb;
    if (d->file->fd >= 0 && fstat(d->file->fd, &sb) == 0 && (uint64_t)sb.st_size < d->file->size)
        return HFEED__FAIL(err, HFEED_E_READ,
                           "file \"%s\" dataset \"%s\": the file is shorter than when the loader "
                           "opened it (%llu bytes, was %llu): truncated while being read?",
                           d->file->path, d->name, (unsigned long long)sb.st_size,
                           (unsigned long long)d->file->size);
    return HFEED_OK;
}

hfeed_status hfeed__h5_dset_write_attr_f64(struct hfeed__h5dset *d, const char *name,
                                           const double *v, size_t n, struct hfeed__err *err)
{
    const hsize_t dim = n;
    hfeed_status st = HFEED_OK;
    lock();
    const hid_t space = H5Screate_simple(1, &dim, NULL);
    const hid_t a = H5Acreate2(d->id, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, v) < 0)
        st = fail_h5(err, HFEED_E_FILE, "file \"%s\" dataset \"%s\": cannot write attribute \"%s\"",
                     d->file->path, d->name, name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    unlock();
    return st;
}

hfeed_status hfeed__h5_file_flush(struct hfeed__h5file *f, struct hfeed__err *err)
{
    hfeed_status st = HFEED_OK;
    lock();
    if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0)
        st = fail_h5(err, HFEED_E_FILE, "file \"%s\": cannot flush", f->path);
    unlock();
    return st;
}

hfeed_status hfeed__h5_dset_write_rows(struct hfeed__h5dset *d, uint64_t row, uint64_t nrows,
                                       const void *src, struct hfeed__err *err)
{
    return transfer_rows(d, row, nrows, NULL, src, HFEED_E_FILE, err);
}

/* ---- Metadata for inspection ---- */

struct link_list {
    struct hfeed__h5_link *v;
    size_t n, cap;
    bool nomem;
};

static bool links_add(struct link_list *l, const char *path, const char *target,
                      enum hfeed__link_kind kind)
{
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 16;
        struct hfeed__h5_link *v = hfeed__alloc(cap * sizeof *v);
        if (v == NULL) return false;
        if (l->n > 0) memcpy(v, l->v, l->n * sizeof *v);
        hfeed__free(l->v);
        l->v = v;
        l->cap = cap;
    }
    struct hfeed__h5_link *e = &l->v[l->n];
    e->kind = kind;
    e->path = hfeed__strdup(path);
    e->target = target != NULL ? hfeed__strdup(target) : NULL;
    if (e->path == NULL || (target != NULL && e->target == NULL)) {
        hfeed__free(e->path);
        hfeed__free(e->target);
        return false;
    }
    l->n++;
    return true;
}

/* The value of a soft or external link `name` below g, as text, into buf. Lock held. */
static void link_target(hid_t g, const char *name, const H5L_info_t *info, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    char val[512];
    if (info->u.val_size > sizeof val || H5Lget_val(g, name, val, sizeof val, H5P_DEFAULT) < 0)
        return;
    if (info->type == H5L_TYPE_SOFT) {
        snprintf(buf, len, "%.*s", (int)strnlen(val, info->u.val_size), val);
        return;
    }
    const char *file = NULL, *obj = NULL;
    unsigned flags = 0;
    if (H5Lunpack_elink_val(val, info->u.val_size, &flags, &file, &obj) >= 0)
        snprintf(buf, len, "%s:%s", file, obj);
}

/* H5Lvisit callback: records every link that does not lead to a group. Lock held. */
static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    struct link_list *l = data;
    char path[1024];
    snprintf(path, sizeof path, "/%s", name);
    enum hfeed__link_kind kind = HFEED__LINK_OTHER;
    char target[512] = "";
    if (info->type == H5L_TYPE_HARD) {
        H5O_info_t oi;
        if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
            H5Eclear2(H5E_DEFAULT);
        } else if (oi.type == H5O_TYPE_GROUP) {
            return 0;
        } else if (oi.type == H5O_TYPE_DATASET) {
            kind = HFEED__LINK_DATASET;
        } else if (oi.type == H5O_TYPE_NAMED_DATATYPE) {
            kind = HFEED__LINK_DATATYPE;
        }
    } else if (info->type == H5L_TYPE_SOFT || info->type == H5L_TYPE_EXTERNAL) {
        kind = info->type == H5L_TYPE_SOFT ? HFEED__LINK_SOFT : HFEED__LINK_EXTERNAL;
        link_target(g, name, info, target, sizeof target);
    }
    if (!links_add(l, path, target[0] ? target : NULL, kind)) {
        l->nomem = true;
        return -1;
    }
    return 0;
}

hfeed_status hfeed__h5_file_list(struct hfeed__h5file *f, struct hfeed__h5_link **out, size_t *n,
                                 struct hfeed__err *err)
{
    *out = NULL;
    *n = 0;
    struct link_list l = {NULL, 0, 0, false};
    hfeed_status st = HFEED_OK;
    lock();
    if (H5Lvisit(f->id, H5_INDEX_NAME, H5_ITER_INC, visit_link, &l) < 0)
        st = l.nomem ? HFEED_E_NOMEM
                     : fail_h5(err, HFEED_E_FILE, "file \"%s\": cannot list its objects", f->path);
    H5Eclear2(H5E_DEFAULT);
    unlock();
    if (st == HFEED_E_NOMEM)
        st = HFEED__FAIL(err, HFEED_E_NOMEM, "file \"%s\": out of memory listing objects", f->path);
    if (st != HFEED_OK) {
        hfeed__h5_links_free(l.v, l.n);
        return st;
    }
    *out = l.v;
    *n = l.n;
    return HFEED_OK;
}

void hfeed__h5_links_free(struct hfeed__h5_link *links, size_t n)
{
    for (size_t i = 0; links != NULL && i < n; i++) {
        hfeed__free(links[i].path);
        hfeed__free(links[i].target);
    }
    hfeed__free(links);
}

/* Fills out from the dataset's creation properties and storage. Lock held. */
static bool details_locked(struct hfeed__h5dset *d, struct hfeed__dset_details *out)
{
    const hid_t dcpl = H5Dget_create_plist(d->id);
    if (dcpl < 0) return false;
    const int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && i < 8; i++) {
        struct hfeed__h5_filter *flt = &out->filters[out->nfilters++];
        size_t ncd = 8;
        flt->id = H5Pget_filter2(dcpl, (unsigned)i, &flt->flags, &ncd, flt->params,
                                 sizeof flt->name, flt->name, NULL);
        flt->name[sizeof flt->name - 1] = '\0';
        flt->nparams = (unsigned)ncd; /* how many HDF5 stored; at most 8 were copied */
    }
    const bool chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
    H5Pclose(dcpl);
    out->storage_bytes = H5Dget_storage_size(d->id);
    if (chunked) {
        hsize_t nchunks = 0;
        const hid_t space = H5Dget_space(d->id);
        if (space >= 0 && H5Dget_num_chunks(d->id, space, &nchunks) >= 0)
            out->allocated_chunks = nchunks;
        if (space >= 0) H5Sclose(space);
    }
    H5Eclear2(H5E_DEFAULT);
    return n >= 0;
}

hfeed_status hfeed__h5_dset_details(struct hfeed__h5dset *d, struct hfeed__dset_details *out,
                                    struct hfeed__err *err)
{
    memset(out, 0, sizeof *out);
    hfeed_status st = HFEED_OK;
    lock();
    if (!details_locked(d, out))
        st = fail_h5(err, HFEED_E_DATASET, "file \"%s\" dataset \"%s\": cannot describe filters",
                     d->file->path, d->name);
    unlock();
    return st;
}
