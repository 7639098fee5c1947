/* safetensors container: 8-byte little-endian header length, JSON header, raw data.
 * The parser validates everything it returns: offsets lie inside the data, tensors do not
 * overlap, sizes agree with dtype and shape. */
#ifndef CXR_SAFETENSORS_H
#define CXR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define CXR_ST_NAME_MAX 64
#define CXR_ST_VALUE_MAX 256
#define CXR_ST_MAX_DIMS 8
#define CXR_ST_MAX_TENSORS 1024
#define CXR_ST_MAX_HEADER (16u << 20)

typedef enum { CXR_ST_F32, CXR_ST_I64, CXR_ST_I32 } cxr_st_dtype;

/* Bytes of one element. */
size_t cxr_st_dtype_size(cxr_st_dtype t);

typedef struct {
    char name[CXR_ST_NAME_MAX];
    cxr_st_dtype dtype;
    int ndim;
    int64_t shape[CXR_ST_MAX_DIMS];
    size_t begin, end; /* byte offsets into the data section */
} cxr_st_tensor;

typedef struct {
    char key[CXR_ST_NAME_MAX];
    char value[CXR_ST_VALUE_MAX];
} cxr_st_meta;

typedef struct {
    int n_tensors, n_meta;
    cxr_st_tensor *tensors;
    cxr_st_meta *meta;
    const uint8_t *data; /* points into the caller's buffer */
    size_t data_len;
} cxr_st_file;

/* Returns 0 on success; otherwise fills err and returns -1 (nothing to free). */
int cxr_st_parse(const uint8_t *buf, size_t len, cxr_st_file *out, char *err, size_t errlen);
void cxr_st_free(cxr_st_file *f);
const cxr_st_tensor *cxr_st_find(const cxr_st_file *f, const char *name);
const char *cxr_st_meta_get(const cxr_st_file *f, const char *key);

/* ---- the one writer of the format ---- */
typedef struct {
    const char *key, *value; /* written as JSON strings, escaped */
} cxr_st_meta_out;

typedef struct {
    const char *name;
    cxr_st_dtype dtype;
    int ndim;
    int64_t shape[CXR_ST_MAX_DIMS];
    const void *data; /* numel * cxr_st_dtype_size(dtype) bytes */
} cxr_st_tensor_out;

/* malloc'd file bytes: the metadata in the order given, then the tensors in the order given,
 * their data back to back; the header is padded with spaces so that the data starts 8-byte
 * aligned, as PyTorch's writer does. Returns 0, or -1 when out of memory. */
int cxr_st_write(const cxr_st_meta_out *meta, int n_meta, const cxr_st_tensor_out *tensors,
                 int n_tensors, uint8_t **out, size_t *out_len);

#endif
