/* libFuzzer harness for hfeed__codec_decode (loader/codec.c).
 *
 * Input layout: 4 prefix bytes, then the stored chunk.
 *   [0]  bits 0-1 nfilters (0..3), bits 2-3 elem_size selector (1,2,4,8),
 *        bits 4-7 filter mask (low bits used)
 *   [1]  filter order: 3 two-bit fields, each picks id 1/2/3 (0 -> 1)
 *   [2..3] chunk_bytes (u16, 0 -> 65536)
 * Matches seed_corpus.py. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static struct hfeed__codec *codec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    if (!codec && hfeed__codec_create(&codec, NULL) != HFEED_OK) abort();

    struct hfeed__pipeline p;
    memset(&p, 0, sizeof p);
    p.nfilters = data[0] & 3u;
    static const size_t esz[4] = {1, 2, 4, 8};
    p.elem_size = esz[(data[0] >> 2) & 3u];
    unsigned mask = (data[0] >> 4) & 0xfu;
    for (unsigned i = 0; i < p.nfilters; i++) {
        unsigned id = (data[1] >> (2 * i)) & 3u;
        p.ids[i] = id ? (int)id : 1;
    }
    size_t chunk_bytes = (size_t)(data[2] | data[3] << 8);
    if (chunk_bytes == 0) chunk_bytes = 65536;

    size_t in_len = size - 4;
    /* Exact-size heap copies so ASan catches any overrun of in, out or tmp. */
    unsigned char *in = malloc(in_len ? in_len : 1);
    unsigned char *out = malloc(chunk_bytes);
    unsigned char *tmp = malloc(chunk_bytes);
    if (!in || !out || !tmp) abort();
    if (in_len) memcpy(in, data + 4, in_len);
    struct hfeed__err err;
    memset(&err, 0, sizeof err);
    if (hfeed__codec_supports(&p))
        (void)hfeed__codec_decode(codec, &p, mask, in, in_len, out, tmp, chunk_bytes, &err);
    free(in);
    free(out);
    free(tmp);
    return 0;
}
