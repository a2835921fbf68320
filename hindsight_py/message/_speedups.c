/*
 * hindsight_py.message._speedups: the per-record hot path (framed scan + strict Heka decode) in C.
 *
 * This is an accelerator, not a second implementation: hindsight_py/message/decode.py and
 * framing.py stay the reference, and this file must accept and reject exactly what they do and
 * produce identical values (tests/unit/test_speedups.py checks that differentially). Every rule
 * below names the Python line it mirrors.
 *
 *   configure(Message, Field)          store the two NamedTuple classes (called at import)
 *   decode(data: bytes) -> Message | None
 *       None exactly when decode_message() would raise DecodeError (the Python side re-runs the
 *       reference decoder to get lua_sandbox's error text).
 *   scan(buf, pos, final, max_message_size, decode, in_corruption[, spans[, limit]])
 *       -> (records, new_pos, discarded, new_runs, in_corruption[, ends, gaps])
 *       Every complete record from `pos` (at most `limit` when limit >= 0), exactly the sequence
 *       repeated FrameScanner.next_record() calls would return. With `spans` true two lists
 *       follow: ends[i] is the buffer position after record i and gaps[i] the number of bytes
 *       discarded just before it, so FrameScanner can keep `offset` and `stats` exact after
 *       every record it yields.
 *
 * Message and Field are tuple subclasses with __slots__ = (); instances are built directly with
 * tp_alloc + PyTuple_SET_ITEM (what tuple.__new__ does for subclasses), without running Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MIN_MESSAGE_SIZE 20   /* decode.py MIN_MESSAGE_SIZE */
#define MAX_VARINT_BYTES 10   /* decode.py _MAX_VARINT_BYTES */
#define I64_SIGN ((uint64_t)1 << 63)
#define RECORD_SEPARATOR 0x1E
#define UNIT_SEPARATOR 0x1F

#define MESSAGE_ITEMS 10
#define FIELD_ITEMS 4

/* Results of the decoding helpers. */
#define DEC_ERROR (-1) /* a Python exception is set (MemoryError, ...) */
#define DEC_INVALID 0  /* the Python reference would raise DecodeError */
#define DEC_OK 1

typedef struct {
    PyTypeObject *message_type;
    PyTypeObject *field_type;
} speedups_state;

static inline speedups_state *
get_state(PyObject *module)
{
    return (speedups_state *)PyModule_GetState(module);
}

/* ---------------------------------------------------------------------------------------------
 * A small growable array of owned references (values of one Field, Fields of one Message).
 */

#define OBJVEC_STACK 16

typedef struct {
    PyObject **items;
    Py_ssize_t n;
    Py_ssize_t cap;
    PyObject *stack[OBJVEC_STACK];
} objvec;

static inline void
objvec_init(objvec *v)
{
    v->items = v->stack;
    v->n = 0;
    v->cap = OBJVEC_STACK;
}

static void
objvec_clear(objvec *v)
{
    for (Py_ssize_t i = 0; i < v->n; i++) {
        Py_DECREF(v->items[i]);
    }
    v->n = 0;
    if (v->items != v->stack) {
        PyMem_Free(v->items);
        v->items = v->stack;
        v->cap = OBJVEC_STACK;
    }
}

/* Appends `o`, stealing the reference (also on failure, when `o` is released). NULL `o` fails. */
static int
objvec_push(objvec *v, PyObject *o)
{
    if (o == NULL) {
        return -1;
    }
    if (v->n == v->cap) {
        if (v->cap > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(PyObject *)) {
            Py_DECREF(o);
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t ncap = v->cap * 2;
        PyObject **items;
        if (v->items == v->stack) {
            items = PyMem_Malloc((size_t)ncap * sizeof(PyObject *));
            if (items != NULL) {
                memcpy(items, v->stack, (size_t)v->n * sizeof(PyObject *));
            }
        }
        else {
            items = PyMem_Realloc(v->items, (size_t)ncap * sizeof(PyObject *));
        }
        if (items == NULL) {
            Py_DECREF(o);
            PyErr_NoMemory();
            return -1;
        }
        v->items = items;
        v->cap = ncap;
    }
    v->items[v->n++] = o;
    return 0;
}

/* A plain tuple of the vector's items (untracked, see new_record); the vector is left empty. */
static PyObject *
objvec_to_tuple(objvec *v)
{
    PyObject *t = PyTuple_New(v->n);
    if (t == NULL) {
        objvec_clear(v);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < v->n; i++) {
        PyTuple_SET_ITEM(t, i, v->items[i]);
    }
    v->n = 0;
    objvec_clear(v);
    PyObject_GC_UnTrack(t);
    return t;
}

/* An instance of the tuple subclass `tp` holding items[0..n) (references stolen, also on error).

   Every container built here (Message, its fields tuple, Field, its values tuple, the (raw, msg)
   record) holds only bytes, ints, floats, bools, None and other such containers: none can be
   part of a reference cycle, so they are untracked by the cyclic GC at once. CPython untracks
   plain tuples like these itself at their first collection but never tuple subclasses; left
   tracked, the allocation-driven collections cost as much as the decoding (measured: ~45%). */
static PyObject *
new_record(PyTypeObject *tp, PyObject **items, Py_ssize_t n)
{
#if PY_VERSION_HEX < 0x030E0000
    PyObject *t = tp->tp_alloc(tp, n);
    if (t == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_DECREF(items[i]);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    PyObject_GC_UnTrack(t);
    return t;
#else
    /* CPython 3.14 caches tuple hashes in the object and tuple.__new__ resets that cache after
       tp_alloc with a private macro; go through tuple.__new__ itself instead. */
    PyObject *plain = PyTuple_New(n);
    if (plain == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_DECREF(items[i]);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(plain, i, items[i]);
    }
    PyObject *args = PyTuple_Pack(1, plain);
    Py_DECREF(plain);
    if (args == NULL) {
        return NULL;
    }
    PyObject *t = PyTuple_Type.tp_new(tp, args, NULL);
    Py_DECREF(args);
    if (t != NULL) {
        PyObject_GC_UnTrack(t);
    }
    return t;
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Protobuf primitives, as decode.py reads them.
 */

/* decode.py _varint: at most 10 bytes, failing at `e`; the value wraps to 64 bits. */
static inline int
read_varint(const unsigned char *b, Py_ssize_t *pp, Py_ssize_t e, uint64_t *out)
{
    Py_ssize_t p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < MAX_VARINT_BYTES && p < e; i++, p++) {
        unsigned int c = b[p];
        /* 7 * i <= 63: a defined unsigned shift; bits past 63 are dropped like `& (_U64 - 1)`. */
        v |= (uint64_t)(c & 0x7F) << (7 * i);
        if (c < 0x80) {
            *pp = p + 1;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* decode.py _length: non-negative as int64 and no longer than what is left before `e`. */
static inline int
read_length(const unsigned char *b, Py_ssize_t *pp, Py_ssize_t e, Py_ssize_t *out)
{
    uint64_t v;
    if (read_varint(b, pp, e, &v) < 0) {
        return -1;
    }
    if ((v & I64_SIGN) || v > (uint64_t)(e - *pp)) {
        return -1;
    }
    *out = (Py_ssize_t)v;
    return 0;
}

/* decode.py _signed, without relying on implementation-defined conversions. */
static inline int64_t
to_signed(uint64_t v)
{
    return (v & I64_SIGN) ? -(int64_t)(~v) - 1 : (int64_t)v;
}

static inline double
read_double(const unsigned char *p)
{
#if PY_LITTLE_ENDIAN
    double d;
    memcpy(&d, p, sizeof d);
    return d;
#else
    unsigned char tmp[8];
    for (int i = 0; i < 8; i++) {
        tmp[i] = p[7 - i];
    }
    double d;
    memcpy(&d, tmp, sizeof d);
    return d;
#endif
}

static inline PyObject *
bytes_at(const unsigned char *b, Py_ssize_t off, Py_ssize_t n)
{
    return PyBytes_FromStringAndSize((const char *)b + off, n);
}

/* ---------------------------------------------------------------------------------------------
 * decode.py _decode_field: one Fields entry (tag 10) at *pp inside a message of `end` bytes.
 *
 * lua_sandbox's process_fields keeps one `len` variable for the field length and for packed
 * lengths: scalar varints of tags 6/8 are bounded by `p + len` (a bound that slides with p), and
 * packed runs are read until the end of the *field*, not of the packed value. Reads may thus run
 * past the field, up to the end of the message (where the reference gets IndexError or
 * struct.error, both a DecodeError), and the message walk resumes wherever the field stopped.
 */

/* min(p + n, end) without overflow: a sliding bound never reads past the message. */
static inline Py_ssize_t
sliding_bound(Py_ssize_t p, Py_ssize_t n, Py_ssize_t end)
{
    return n > end - p ? end : p + n;
}

/* What validate-only decoding (out == NULL) keeps of a field: its name and its first value (the
   one read_message('Fields[name]') returns), with no Python object built. */
#define FV_NONE 0
#define FV_BYTES 1
#define FV_INT 2
#define FV_BOOL 3
#define FV_DOUBLE 4

typedef struct {
    int kind;
    Py_ssize_t off, len; /* FV_BYTES */
    int64_t i;           /* FV_INT, FV_BOOL */
    double d;            /* FV_DOUBLE */
} fvalue;

typedef struct {
    Py_ssize_t name_off, name_len;
    fvalue first;
} finfo;

/* With out == NULL the field is only validated (exactly the same checks) and *info filled. */
static int
decode_field(speedups_state *st, const unsigned char *b, Py_ssize_t *pp, Py_ssize_t end,
             PyObject **out, finfo *info)
{
    const int build = out != NULL;
    fvalue first;
    first.kind = FV_NONE;
    Py_ssize_t p = *pp;
    Py_ssize_t n;
    if (read_length(b, &p, end, &n) < 0) {
        return DEC_INVALID;
    }
    if (n == 0) {
        /* lua_sandbox's do/while (decode.py's `first`) reads one key past an empty field record;
           whatever follows, the field cannot get a name (a tag 1 length read starting past the
           field end always fails), so the record is rejected. */
        return DEC_INVALID;
    }
    const Py_ssize_t e = p + n;
    Py_ssize_t length = n; /* decode.py `length`: the field length, then the last packed length */
    Py_ssize_t name_off = -1, name_len = 0, rep_off = -1, rep_len = 0;
    int has_vt = 0;
    int64_t vt = 0;
    objvec values;
    objvec_init(&values);

    /* n > 0, so p < e on entry; every iteration starts with p < e <= end. */
    while (p < e) {
        const unsigned int key = b[p++];
        const unsigned int tag = key >> 3;
        const unsigned int wt = key & 7;
        uint64_t v;
        Py_ssize_t sl;
        PyObject *o;
        switch (tag) {
        case 1:
        case 3:
        case 4:
        case 5:
            if (wt != 2 || read_length(b, &p, e, &sl) < 0) {
                goto invalid;
            }
            if (tag == 1) {
                name_off = p;
                name_len = sl;
            }
            else if (tag == 3) {
                rep_off = p;
                rep_len = sl;
            }
            else if (!build) {
                if (first.kind == FV_NONE) {
                    first.kind = FV_BYTES;
                    first.off = p;
                    first.len = sl;
                }
            }
            else if (objvec_push(&values, bytes_at(b, p, sl)) < 0) {
                goto error;
            }
            p += sl;
            break;
        case 2:
            if (wt != 0 || read_varint(b, &p, e, &v) < 0) {
                goto invalid;
            }
            has_vt = 1;
            vt = to_signed(v);
            break;
        case 6:
        case 8:
            if (wt == 0) {
                if (read_varint(b, &p, sliding_bound(p, length, end), &v) < 0) {
                    goto invalid;
                }
                if (!build) {
                    if (first.kind == FV_NONE) {
                        first.kind = tag == 6 ? FV_INT : FV_BOOL;
                        first.i = tag == 6 ? to_signed(v) : (v & 0xFFFFFFFFu) != 0;
                    }
                    break;
                }
                o = tag == 6 ? PyLong_FromLongLong(to_signed(v)) : PyBool_FromLong((v & 0xFFFFFFFFu) != 0);
                if (objvec_push(&values, o) < 0) {
                    goto error;
                }
            }
            else if (wt == 2) {
                if (read_length(b, &p, e, &length) < 0) {
                    goto invalid;
                }
                do { /* until the end of the field, each varint bounded by p + length */
                    if (read_varint(b, &p, sliding_bound(p, length, end), &v) < 0) {
                        goto invalid;
                    }
                    if (!build) {
                        if (first.kind == FV_NONE) {
                            first.kind = tag == 6 ? FV_INT : FV_BOOL;
                            first.i = tag == 6 ? to_signed(v) : (v & 0xFFFFFFFFu) != 0;
                        }
                        continue;
                    }
                    o = tag == 6 ? PyLong_FromLongLong(to_signed(v)) : PyBool_FromLong((v & 0xFFFFFFFFu) != 0);
                    if (objvec_push(&values, o) < 0) {
                        goto error;
                    }
                } while (p < e);
            }
            else {
                goto invalid;
            }
            break;
        case 7:
            if (wt == 1) {
                if (e - p < 8) {
                    goto invalid;
                }
                if (!build) {
                    if (first.kind == FV_NONE) {
                        first.kind = FV_DOUBLE;
                        first.d = read_double(b + p);
                    }
                }
                else if (objvec_push(&values, PyFloat_FromDouble(read_double(b + p))) < 0) {
                    goto error;
                }
                p += 8;
            }
            else if (wt == 2) {
                if (read_length(b, &p, e, &length) < 0 || length % 8 != 0) {
                    goto invalid;
                }
                do { /* until the end of the field (one double even for an empty run) */
                    if (end - p < 8) {
                        goto invalid; /* struct.error past the end of the message */
                    }
                    if (!build) {
                        if (first.kind == FV_NONE) {
                            first.kind = FV_DOUBLE;
                            first.d = read_double(b + p);
                        }
                    }
                    else if (objvec_push(&values, PyFloat_FromDouble(read_double(b + p))) < 0) {
                        goto error;
                    }
                    p += 8;
                } while (p < e);
            }
            else {
                goto invalid;
            }
            break;
        default:
            goto invalid; /* unknown tags are not allowed */
        }
    }
    if (name_off < 0) {
        goto invalid;
    }
    if (!build) {
        (void)has_vt;
        (void)rep_len;
        if (info != NULL) {
            info->name_off = name_off;
            info->name_len = name_len;
            info->first = first;
        }
        *pp = p;
        return DEC_OK;
    }

    PyObject *items[FIELD_ITEMS];
    items[0] = bytes_at(b, name_off, name_len);
    items[1] = has_vt ? PyLong_FromLongLong(vt) : Py_NewRef(Py_None);
    items[2] = rep_off >= 0 ? bytes_at(b, rep_off, rep_len) : Py_NewRef(Py_None);
    items[3] = objvec_to_tuple(&values);
    if (items[0] == NULL || items[1] == NULL || items[2] == NULL || items[3] == NULL) {
        for (int i = 0; i < FIELD_ITEMS; i++) {
            Py_XDECREF(items[i]);
        }
        return DEC_ERROR;
    }
    *out = new_record(st->field_type, items, FIELD_ITEMS);
    if (*out == NULL) {
        return DEC_ERROR;
    }
    *pp = p; /* may lie past the field's end, never past the message's */
    return DEC_OK;

invalid:
    objvec_clear(&values);
    return DEC_INVALID;
error:
    objvec_clear(&values);
    return DEC_ERROR;
}

/* A header string: where it is (offset -1 when absent). */
typedef struct {
    Py_ssize_t off;
    Py_ssize_t len;
} span;

static inline PyObject *
span_or_none(const unsigned char *b, span s)
{
    return s.off >= 0 ? bytes_at(b, s.off, s.len) : Py_NewRef(Py_None);
}

static inline PyObject *
int_or_none(int present, int64_t v)
{
    return present ? PyLong_FromLongLong(v) : Py_NewRef(Py_None);
}

/* What validate-only decoding keeps of a message: its headers and, for each wanted field name,
   the first field of that name (read_message's `Fields[name]` with indexes 0, 0). */
#define MAX_WANTED 64

typedef struct {
    span uuid, typ, logger, payload, env_version, hostname;
    int has_ts, has_sev, has_pid;
    int64_t ts, sev, pid;
    Py_ssize_t nwant;
    const char *want[MAX_WANTED];
    Py_ssize_t want_len[MAX_WANTED];
    int got[MAX_WANTED];
    finfo found[MAX_WANTED];
} minfo;

/* decode.py decode_message over b[0..e). With out == NULL the message is only validated (the
   same accept/reject decision, no Python object built) and, when mi is not NULL, described in
   *mi. */
static int decode_message_ex(speedups_state *st, const unsigned char *b, Py_ssize_t e, PyObject **out,
                             minfo *mi, int with_fields);

static int
decode_message(speedups_state *st, const unsigned char *b, Py_ssize_t e, PyObject **out, minfo *mi)
{
    return decode_message_ex(st, b, e, out, mi, 1);
}

/* decode_message; with with_fields == 0 a built Message has `fields` = () (the fields are only
   validated). */
static int
decode_message_ex(speedups_state *st, const unsigned char *b, Py_ssize_t e, PyObject **out, minfo *mi,
                  int with_fields)
{
    const int build = out != NULL;
    if (mi != NULL) {
        for (Py_ssize_t k = 0; k < mi->nwant; k++) {
            mi->got[k] = 0;
        }
    }
    if (e < MIN_MESSAGE_SIZE) {
        return DEC_INVALID; /* "invalid message, too short" */
    }
    span uuid = {-1, 0}, typ = {-1, 0}, logger = {-1, 0}, payload = {-1, 0},
         env_version = {-1, 0}, hostname = {-1, 0};
    int has_ts = 0, has_sev = 0, has_pid = 0;
    int64_t ts = 0, sev = 0, pid = 0;
    objvec fields;
    objvec_init(&fields);
    Py_ssize_t p = 0;

    while (p < e) {
        const Py_ssize_t lp = p; /* decode.py `lp`: where this tag starts */
        const unsigned int key = b[p++];
        const unsigned int tag = key >> 3;
        const unsigned int wt = key & 7;
        uint64_t v;
        Py_ssize_t sl;
        span s;
        switch (tag) {
        case 1:
        case 3:
        case 4:
        case 6:
        case 7:
        case 9:
            if (wt != 2 || read_length(b, &p, e, &sl) < 0) {
                goto invalid;
            }
            s.off = p;
            s.len = sl;
            p += sl;
            switch (tag) {
            case 1:
                if (p - lp != 18) { /* one key byte, one length byte, 16 bytes */
                    goto invalid;
                }
                uuid = s;
                break;
            case 3:
                typ = s;
                break;
            case 4:
                logger = s;
                break;
            case 6:
                payload = s;
                break;
            case 7:
                env_version = s;
                break;
            default:
                hostname = s;
                break;
            }
            break;
        case 2:
        case 5:
        case 8:
            if (wt != 0 || read_varint(b, &p, e, &v) < 0) {
                goto invalid;
            }
            if (tag == 2) {
                has_ts = 1;
                ts = to_signed(v);
            }
            else if (tag == 5) {
                has_sev = 1;
                sev = to_signed(v);
            }
            else {
                has_pid = 1;
                pid = to_signed(v);
            }
            break;
        case 10: {
            if (wt != 2) {
                goto invalid;
            }
            if (!build || !with_fields) {
                finfo fi;
                if (decode_field(st, b, &p, e, NULL, &fi) != DEC_OK) {
                    goto invalid;
                }
                if (mi != NULL) {
                    for (Py_ssize_t k = 0; k < mi->nwant; k++) {
                        if (!mi->got[k] && mi->want_len[k] == fi.name_len &&
                            memcmp(mi->want[k], b + fi.name_off, (size_t)fi.name_len) == 0) {
                            mi->got[k] = 1;
                            mi->found[k] = fi;
                        }
                    }
                }
                break;
            }
            PyObject *f = NULL;
            int rc = decode_field(st, b, &p, e, &f, NULL);
            if (rc == DEC_INVALID) {
                goto invalid;
            }
            if (rc == DEC_ERROR || objvec_push(&fields, f) < 0) {
                goto error;
            }
            break;
        }
        default:
            goto invalid;
        }
    }
    if (uuid.off < 0 || !has_ts) {
        goto invalid; /* "missing required field ..." */
    }
    if (!build) {
        if (mi != NULL) {
            mi->uuid = uuid;
            mi->typ = typ;
            mi->logger = logger;
            mi->payload = payload;
            mi->env_version = env_version;
            mi->hostname = hostname;
            mi->has_ts = has_ts;
            mi->ts = ts;
            mi->has_sev = has_sev;
            mi->sev = sev;
            mi->has_pid = has_pid;
            mi->pid = pid;
        }
        return DEC_OK;
    }

    PyObject *items[MESSAGE_ITEMS];
    items[0] = bytes_at(b, uuid.off, uuid.len);
    items[1] = PyLong_FromLongLong(ts);
    items[2] = span_or_none(b, typ);
    items[3] = span_or_none(b, logger);
    items[4] = int_or_none(has_sev, sev);
    items[5] = span_or_none(b, payload);
    items[6] = span_or_none(b, env_version);
    items[7] = int_or_none(has_pid, pid);
    items[8] = span_or_none(b, hostname);
    items[9] = objvec_to_tuple(&fields);
    for (int i = 0; i < MESSAGE_ITEMS; i++) {
        if (items[i] == NULL) {
            for (int j = 0; j < MESSAGE_ITEMS; j++) {
                Py_XDECREF(items[j]);
            }
            return DEC_ERROR;
        }
    }
    *out = new_record(st->message_type, items, MESSAGE_ITEMS);
    return *out == NULL ? DEC_ERROR : DEC_OK;

invalid:
    objvec_clear(&fields);
    return DEC_INVALID;
error:
    objvec_clear(&fields);
    return DEC_ERROR;
}

static int
check_configured(speedups_state *st)
{
    if (st->message_type == NULL || st->field_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.configure(Message, Field) was not called");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Module functions.
 */

static int
check_record_type(PyObject *o, const char *what, Py_ssize_t nitems)
{
    if (!PyType_Check(o) || !PyType_IsSubtype((PyTypeObject *)o, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple subclass", what);
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)o;
    /* A NamedTuple with __slots__ = (): same layout as tuple, no __dict__ or __weakref__. */
    if (tp->tp_basicsize != PyTuple_Type.tp_basicsize || tp->tp_itemsize != PyTuple_Type.tp_itemsize ||
        tp->tp_dictoffset != 0) {
        PyErr_Format(PyExc_TypeError, "%s must have tuple's layout (a NamedTuple)", what);
        return -1;
    }
    PyObject *fields = PyObject_GetAttrString(o, "_fields");
    if (fields == NULL) {
        return -1;
    }
    Py_ssize_t n = PyObject_Length(fields);
    Py_DECREF(fields);
    if (n < 0) {
        return -1;
    }
    if (n != nitems) {
        PyErr_Format(PyExc_TypeError, "%s must have %zd fields, not %zd", what, nitems, n);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure($module, Message, Field, /)\n--\n\n"
"Store the NamedTuple classes decode() and scan() build.");

static PyObject *
sp_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "configure() takes exactly 2 arguments (Message, Field)");
        return NULL;
    }
    if (check_record_type(args[0], "Message", MESSAGE_ITEMS) < 0 ||
        check_record_type(args[1], "Field", FIELD_ITEMS) < 0) {
        return NULL;
    }
    speedups_state *st = get_state(module);
    Py_XSETREF(st->message_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(st->field_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(decode_doc,
"decode($module, data, /)\n--\n\n"
"Decode one Heka protobuf message (bytes) like decode_message(); None where that raises DecodeError.");

static PyObject *
sp_decode(PyObject *module, PyObject *data)
{
    speedups_state *st = get_state(module);
    if (check_configured(st) < 0) {
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "decode() argument must be bytes, not %.200s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    PyObject *msg = NULL;
    int rc = decode_message(st, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &msg, NULL);
    if (rc == DEC_ERROR) {
        return NULL;
    }
    if (rc == DEC_INVALID) {
        Py_RETURN_NONE;
    }
    return msg;
}

/* FrameScanner.max_message_size as scan() compares with it: framing.py `0 < v <= max_message_size`
   where v has up to 70 bits (_header_length does not mask it). Stored as a 128-bit bound. */
typedef struct {
    int none;        /* max < 1: nothing is accepted */
    uint64_t hi, lo; /* min(max, 2**70) */
} size_limit;

static int
parse_size_limit(PyObject *o, size_limit *lim)
{
    PyObject *n = PyNumber_Index(o);
    if (n == NULL) {
        return -1;
    }
    int overflow = 0;
    long long ll = PyLong_AsLongLongAndOverflow(n, &overflow);
    if (ll == -1 && PyErr_Occurred()) {
        Py_DECREF(n);
        return -1;
    }
    lim->none = 0;
    lim->hi = 0;
    lim->lo = 0;
    if (overflow < 0 || (overflow == 0 && ll < 1)) {
        lim->none = 1;
    }
    else if (overflow == 0) {
        lim->lo = (uint64_t)ll;
    }
    else {
        /* >= 2**63: split into 64-bit halves, capping at 2**70 (no header varint exceeds it). */
        PyObject *sixty_four = PyLong_FromLong(64);
        PyObject *hi = sixty_four ? PyNumber_Rshift(n, sixty_four) : NULL;
        Py_XDECREF(sixty_four);
        if (hi == NULL) {
            Py_DECREF(n);
            return -1;
        }
        int hov = 0;
        long long h = PyLong_AsLongLongAndOverflow(hi, &hov);
        Py_DECREF(hi);
        if (h == -1 && PyErr_Occurred()) {
            Py_DECREF(n);
            return -1;
        }
        if (hov != 0 || h >= 64) {
            lim->hi = 64;
            lim->lo = 0;
        }
        else {
            lim->hi = (uint64_t)h;
            /* the low 64 bits */
            lim->lo = PyLong_AsUnsignedLongLongMask(n);
            if (lim->lo == (uint64_t)-1 && PyErr_Occurred()) {
                Py_DECREF(n);
                return -1;
            }
        }
    }
    Py_DECREF(n);
    return 0;
}

/* framing.py _header_length. Returns 0 (invalid header) or 1 with the length in *len; *huge is
   set when the length is >= 2**64 (accepted only when max_message_size is that big; such a
   record can never fit in a buffer). */
static int
header_length(const unsigned char *b, Py_ssize_t start, Py_ssize_t hlen, const size_limit *lim,
              uint64_t *len, int *huge)
{
    if (hlen < 2 || b[start] != 0x08 || lim->none) {
        return 0;
    }
    Py_ssize_t p = start + 1;
    const Py_ssize_t e = start + hlen;
    uint64_t lo = 0;
    for (int i = 0; i < 10 && p != e; i++, p++) {
        unsigned int c = b[p];
        uint64_t hi = 0;
        if (i == 9) {
            /* bit 0 lands on bit 63, bits 1..6 above the 64-bit range */
            lo |= (uint64_t)(c & 1) << 63;
            hi = (c & 0x7F) >> 1;
        }
        else {
            lo |= (uint64_t)(c & 0x7F) << (7 * i);
        }
        if (c < 0x80) {
            if (lo & I64_SIGN) {
                return 0; /* negative as int64 */
            }
            if (lo == 0 && hi == 0) {
                return 0;
            }
            if (hi > lim->hi || (hi == lim->hi && lo > lim->lo)) {
                return 0;
            }
            *len = lo;
            *huge = hi != 0;
            return 1;
        }
    }
    return 0;
}

#define SCAN_NONE 0     /* framing only: records are (raw, None) */
#define SCAN_DECODE 1   /* records are (raw, Message) */
#define SCAN_VALIDATE 2 /* records are raw bytes of messages decode_message() accepts */

static PyObject *scan_impl(speedups_state *st, PyObject *bufobj, Py_ssize_t pos, int final,
                           const size_limit *limp, int mode, int in_corr, int want_spans,
                           Py_ssize_t limit);

PyDoc_STRVAR(scan_doc,
"scan($module, buf, pos, final, max_message_size, decode, in_corruption, spans=False, limit=-1, /)\n--\n\n"
"Every complete framed record in buf from pos, as repeated FrameScanner.next_record() calls\n"
"return them: (records, new_pos, discarded, new_runs, in_corruption[, ends, gaps]).");

static PyObject *
sp_scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 6 || nargs > 8) {
        PyErr_SetString(PyExc_TypeError,
                        "scan(buf, pos, final, max_message_size, decode, in_corruption[, spans[, limit]])");
        return NULL;
    }
    speedups_state *st = get_state(module);
    PyObject *bufobj = args[0];
    if (!PyBytes_Check(bufobj)) {
        PyErr_Format(PyExc_TypeError, "scan() buffer must be bytes, not %.200s", Py_TYPE(bufobj)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pos < 0) {
        PyErr_SetString(PyExc_ValueError, "scan() position must not be negative");
        return NULL;
    }
    int final = PyObject_IsTrue(args[2]);
    if (final < 0) {
        return NULL;
    }
    size_limit lim;
    if (parse_size_limit(args[3], &lim) < 0) {
        return NULL;
    }
    int decode = PyObject_IsTrue(args[4]);
    if (decode < 0) {
        return NULL;
    }
    int in_corr = PyObject_IsTrue(args[5]);
    if (in_corr < 0) {
        return NULL;
    }
    int want_spans = 0;
    if (nargs > 6 && (want_spans = PyObject_IsTrue(args[6])) < 0) {
        return NULL;
    }
    Py_ssize_t limit = -1;
    if (nargs > 7) {
        limit = PyLong_AsSsize_t(args[7]);
        if (limit == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (decode && check_configured(st) < 0) {
        return NULL;
    }
    return scan_impl(st, bufobj, pos, final, &lim, decode ? SCAN_DECODE : SCAN_NONE, in_corr, want_spans, limit);
}

PyDoc_STRVAR(scan_raw_doc,
"scan_raw($module, buf, pos, final, max_message_size, in_corruption, limit, /)\n--\n\n"
"scan() with decode=True and spans=False, but each record is only validated: records are the\n"
"raw protobuf bytes (no Message built): (raws, new_pos, discarded, new_runs, in_corruption,\n"
"max_timestamp | None).");

static PyObject *
sp_scan_raw(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan_raw(buf, pos, final, max_message_size, in_corruption, limit)");
        return NULL;
    }
    speedups_state *st = get_state(module);
    PyObject *bufobj = args[0];
    if (!PyBytes_Check(bufobj)) {
        PyErr_Format(PyExc_TypeError, "scan_raw() buffer must be bytes, not %.200s", Py_TYPE(bufobj)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pos < 0) {
        PyErr_SetString(PyExc_ValueError, "scan_raw() position must not be negative");
        return NULL;
    }
    int final = PyObject_IsTrue(args[2]);
    if (final < 0) {
        return NULL;
    }
    size_limit lim;
    if (parse_size_limit(args[3], &lim) < 0) {
        return NULL;
    }
    int in_corr = PyObject_IsTrue(args[4]);
    if (in_corr < 0) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return scan_impl(st, bufobj, pos, final, &lim, SCAN_VALIDATE, in_corr, 0, limit);
}

/* The loop behind scan() and scan_raw(). */
static PyObject *
scan_impl(speedups_state *st, PyObject *bufobj, Py_ssize_t pos, int final, const size_limit *limp,
          int mode, int in_corr, int want_spans, Py_ssize_t limit)
{
    const size_limit lim = *limp;
    const int decode = mode != SCAN_NONE;
    int have_ts = 0;
    int64_t max_ts = 0;
    minfo mi;
    mi.nwant = 0;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(bufobj);
    const Py_ssize_t end = PyBytes_GET_SIZE(bufobj);
    Py_ssize_t discarded = 0, runs = 0, nrec = 0, last = pos;
    PyObject *records = PyList_New(0);
    PyObject *ends = want_spans ? PyList_New(0) : NULL;
    PyObject *gaps = want_spans ? PyList_New(0) : NULL;
    if (records == NULL || (want_spans && (ends == NULL || gaps == NULL))) {
        goto error;
    }

/* FrameScanner._discard */
#define DISCARD(n)              \
    do {                        \
        Py_ssize_t n_ = (n);    \
        pos += n_;              \
        discarded += n_;        \
        if (!in_corr) {         \
            in_corr = 1;        \
            runs++;             \
        }                       \
    } while (0)

    /* FrameScanner.next_record, looping over records instead of returning after one. */
    while (limit < 0 || nrec < limit) {
        if (pos >= end) {
            break;
        }
        const unsigned char *q = memchr(b + pos, RECORD_SEPARATOR, (size_t)(end - pos));
        if (q == NULL) {
            DISCARD(end - pos);
            break;
        }
        const Py_ssize_t start = q - b;
        if (start != pos) {
            DISCARD(start - pos);
        }
        if (end - start < 2) {
            if (final) {
                DISCARD(end - start);
            }
            break;
        }
        const Py_ssize_t hlen = b[start + 1];
        const Py_ssize_t hend = start + hlen + 3;
        if (hend > end) {
            if (final) {
                DISCARD(1);
                continue;
            }
            break;
        }
        if (b[hend - 1] != UNIT_SEPARATOR) {
            DISCARD(1);
            continue;
        }
        uint64_t msglen = 0;
        int huge = 0;
        if (!header_length(b, start + 2, hlen, &lim, &msglen, &huge)) {
            DISCARD(1);
            continue;
        }
        if (huge || msglen > (uint64_t)(end - hend)) {
            if (final) {
                DISCARD(1);
                continue;
            }
            break;
        }
        const Py_ssize_t mlen = (Py_ssize_t)msglen;
        PyObject *msg;
        if (mode == SCAN_VALIDATE) {
            if (decode_message(st, b + hend, mlen, NULL, &mi) != DEC_OK) {
                DISCARD(1);
                continue;
            }
            if (!have_ts || mi.ts > max_ts) {
                max_ts = mi.ts;
                have_ts = 1;
            }
            PyObject *raw = bytes_at(b, hend, mlen);
            if (raw == NULL) {
                goto error;
            }
            int arc = PyList_Append(records, raw);
            Py_DECREF(raw);
            if (arc < 0) {
                goto error;
            }
            pos = hend + mlen;
            last = pos;
            in_corr = 0;
            nrec++;
            continue;
        }
        if (decode) {
            msg = NULL;
            int rc = decode_message(st, b + hend, mlen, &msg, NULL);
            if (rc == DEC_ERROR) {
                goto error;
            }
            if (rc == DEC_INVALID) {
                DISCARD(1);
                continue;
            }
        }
        else {
            msg = Py_NewRef(Py_None);
        }
        PyObject *raw = bytes_at(b, hend, mlen);
        if (raw == NULL) {
            Py_DECREF(msg);
            goto error;
        }
        PyObject *rec = PyTuple_New(2);
        if (rec == NULL) {
            Py_DECREF(raw);
            Py_DECREF(msg);
            goto error;
        }
        PyTuple_SET_ITEM(rec, 0, raw);
        PyTuple_SET_ITEM(rec, 1, msg);
        PyObject_GC_UnTrack(rec);
        int arc = PyList_Append(records, rec);
        Py_DECREF(rec);
        if (arc < 0) {
            goto error;
        }
        if (want_spans) {
            /* `start - last` is everything discarded since the previous record (or `pos`). */
            PyObject *e_obj = PyLong_FromSsize_t(hend + mlen);
            if (e_obj == NULL) {
                goto error;
            }
            arc = PyList_Append(ends, e_obj);
            Py_DECREF(e_obj);
            if (arc < 0) {
                goto error;
            }
            PyObject *g_obj = PyLong_FromSsize_t(start - last);
            if (g_obj == NULL) {
                goto error;
            }
            arc = PyList_Append(gaps, g_obj);
            Py_DECREF(g_obj);
            if (arc < 0) {
                goto error;
            }
        }
        pos = hend + mlen;
        last = pos;
        in_corr = 0;
        nrec++;
    }
#undef DISCARD

    if (mode == SCAN_VALIDATE) {
        PyObject *ts = have_ts ? PyLong_FromLongLong(max_ts) : Py_NewRef(Py_None);
        if (ts == NULL) {
            goto error;
        }
        return Py_BuildValue("(NnnnNN)", records, pos, discarded, runs, PyBool_FromLong(in_corr), ts);
    }
    if (want_spans) {
        return Py_BuildValue("(NnnnNNN)", records, pos, discarded, runs, PyBool_FromLong(in_corr), ends, gaps);
    }
    return Py_BuildValue("(NnnnN)", records, pos, discarded, runs, PyBool_FromLong(in_corr));

error:
    Py_XDECREF(records);
    Py_XDECREF(ends);
    Py_XDECREF(gaps);
    return NULL;
}


/* ---------------------------------------------------------------------------------------------
 * slots(raws, names): read_message values without building Message objects.
 *
 * message_access.slot_builder(names)(raw, decode_message(raw)) for every raw, concatenated into
 * one flat list (len(raws) * len(names) values): what the sandbox hands to Lua as a batch's
 * projected slots. Headers as message_access._HEADERS reads them (Severity defaults to 7,
 * Severity and Pid go through to_int32, a Pid of INT_MIN is None, `framed` is frame(raw)),
 * `Fields[<name>]` the first value of the first field called <name> (None without values).
 * A raw decode_message() rejects raises ValueError (callers pass validated records).
 */
#define SL_UUID 0
#define SL_TIMESTAMP 1
#define SL_TYPE 2
#define SL_LOGGER 3
#define SL_SEVERITY 4
#define SL_PAYLOAD 5
#define SL_ENV_VERSION 6
#define SL_PID 7
#define SL_HOSTNAME 8
#define SL_RAW 9
#define SL_FRAMED 10
#define SL_SIZE 11
#define SL_FIELD 12

static const char *const slot_headers[] = {"Uuid", "Timestamp", "Type", "Logger", "Severity", "Payload",
                                           "EnvVersion", "Pid", "Hostname", "raw", "framed", "size"};

static inline int32_t
to_int32(int64_t v)
{
    uint32_t u = (uint32_t)((uint64_t)v & 0xFFFFFFFFu);
    return (u & 0x80000000u) ? (int32_t)(-(int64_t)(~u) - 1) : (int32_t)u;
}

static PyObject *
field_value(const unsigned char *b, const fvalue *v)
{
    switch (v->kind) {
    case FV_BYTES:
        return bytes_at(b, v->off, v->len);
    case FV_INT:
        return PyLong_FromLongLong(v->i);
    case FV_BOOL:
        return PyBool_FromLong(v->i != 0);
    case FV_DOUBLE:
        return PyFloat_FromDouble(v->d);
    default:
        return Py_NewRef(Py_None);
    }
}

static PyObject *
framed_of(PyObject *raw)
{
    const Py_ssize_t n = PyBytes_GET_SIZE(raw);
    unsigned char hdr[16];
    unsigned char tmp[10];
    size_t k = 0;
    uint64_t v = (uint64_t)n;
    while (v > 0x7F) {
        tmp[k++] = (unsigned char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    tmp[k++] = (unsigned char)v;
    hdr[0] = RECORD_SEPARATOR;
    hdr[1] = (unsigned char)(k + 1);
    hdr[2] = 0x08;
    memcpy(hdr + 3, tmp, k);
    hdr[3 + k] = UNIT_SEPARATOR;
    const Py_ssize_t h = (Py_ssize_t)(k + 4);
    PyObject *out = PyBytes_FromStringAndSize(NULL, h + n);
    if (out == NULL) {
        return NULL;
    }
    memcpy(PyBytes_AS_STRING(out), hdr, (size_t)h);
    memcpy(PyBytes_AS_STRING(out) + h, PyBytes_AS_STRING(raw), (size_t)n);
    return out;
}

PyDoc_STRVAR(decode_batch_doc,
"decode_batch($module, raws, fields, /)\n--\n\n"
"[decode(raw) for raw in raws] in one call; with fields false every Message has fields=() (the\n"
"fields are validated, not built: for matchers that read headers only). ValueError for an\n"
"invalid message (callers pass validated records).");

static PyObject *
sp_decode_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "decode_batch(raws, fields)");
        return NULL;
    }
    speedups_state *st = get_state(module);
    if (check_configured(st) < 0) {
        return NULL;
    }
    int with_fields = PyObject_IsTrue(args[1]);
    if (with_fields < 0) {
        return NULL;
    }
    PyObject *raws = PySequence_Fast(args[0], "decode_batch() raws must be a sequence");
    if (raws == NULL) {
        return NULL;
    }
    const Py_ssize_t nr = PySequence_Fast_GET_SIZE(raws);
    PyObject *out = PyList_New(nr);
    if (out == NULL) {
        Py_DECREF(raws);
        return NULL;
    }
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *raw = PySequence_Fast_GET_ITEM(raws, r);
        if (!PyBytes_Check(raw)) {
            PyErr_SetString(PyExc_TypeError, "decode_batch() raws must be bytes");
            goto error;
        }
        PyObject *msg = NULL;
        int rc = decode_message_ex(st, (const unsigned char *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &msg,
                                   NULL, with_fields);
        if (rc == DEC_ERROR) {
            goto error;
        }
        if (rc == DEC_INVALID) {
            PyErr_SetString(PyExc_ValueError, "decode_batch(): invalid message");
            goto error;
        }
        PyList_SET_ITEM(out, r, msg);
    }
    Py_DECREF(raws);
    return out;
error:
    Py_DECREF(raws);
    Py_DECREF(out);
    return NULL;
}

PyDoc_STRVAR(slots_doc,
"slots($module, raws, names, /)\n--\n\n"
"The projected read_message values of every raw message, flat: slot_builder(names) applied to\n"
"(raw, decode_message(raw)) for each raw, concatenated. ValueError for an invalid message.");

static PyObject *
sp_slots(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "slots(raws, names)");
        return NULL;
    }
    speedups_state *st = get_state(module);
    PyObject *raws = PySequence_Fast(args[0], "slots() raws must be a sequence");
    if (raws == NULL) {
        return NULL;
    }
    PyObject *names = PySequence_Fast(args[1], "slots() names must be a sequence");
    if (names == NULL) {
        Py_DECREF(raws);
        return NULL;
    }
    PyObject *out = NULL;
    const Py_ssize_t nn = PySequence_Fast_GET_SIZE(names);
    const Py_ssize_t nr = PySequence_Fast_GET_SIZE(raws);
    int kinds[MAX_WANTED];
    Py_ssize_t fslot[MAX_WANTED]; /* slot -> index in mi.want */
    minfo mi;
    mi.nwant = 0;
    if (nn > MAX_WANTED) {
        PyErr_SetString(PyExc_ValueError, "slots(): too many names");
        goto done;
    }
    for (Py_ssize_t i = 0; i < nn; i++) {
        PyObject *nm = PySequence_Fast_GET_ITEM(names, i);
        if (!PyBytes_Check(nm)) {
            PyErr_SetString(PyExc_TypeError, "slots() names must be bytes");
            goto done;
        }
        const char *s = PyBytes_AS_STRING(nm);
        const Py_ssize_t len = PyBytes_GET_SIZE(nm);
        kinds[i] = -1;
        for (int h = 0; h < SL_FIELD; h++) {
            if ((size_t)len == strlen(slot_headers[h]) && memcmp(s, slot_headers[h], (size_t)len) == 0) {
                kinds[i] = h;
                break;
            }
        }
        if (kinds[i] < 0) {
            if (len < 8 || memcmp(s, "Fields[", 7) != 0 || s[len - 1] != ']') {
                PyErr_Format(PyExc_ValueError, "slots(): %R is not a message variable", nm);
                goto done;
            }
            kinds[i] = SL_FIELD;
            fslot[i] = mi.nwant;
            mi.want[mi.nwant] = s + 7;
            mi.want_len[mi.nwant] = len - 8;
            mi.nwant++;
        }
    }
    if (nr > 0 && nn > PY_SSIZE_T_MAX / nr) {
        PyErr_NoMemory();
        goto done;
    }
    if (check_configured(st) < 0) {
        goto done;
    }
    out = PyList_New(nr * nn);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *raw = PySequence_Fast_GET_ITEM(raws, r);
        if (!PyBytes_Check(raw)) {
            PyErr_SetString(PyExc_TypeError, "slots() raws must be bytes");
            Py_CLEAR(out);
            goto done;
        }
        const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(raw);
        if (decode_message(st, b, PyBytes_GET_SIZE(raw), NULL, &mi) != DEC_OK) {
            PyErr_SetString(PyExc_ValueError, "slots(): invalid message");
            Py_CLEAR(out);
            goto done;
        }
        for (Py_ssize_t i = 0; i < nn; i++) {
            PyObject *v;
            switch (kinds[i]) {
            case SL_UUID:
                v = span_or_none(b, mi.uuid);
                break;
            case SL_TIMESTAMP:
                v = PyLong_FromLongLong(mi.ts);
                break;
            case SL_TYPE:
                v = span_or_none(b, mi.typ);
                break;
            case SL_LOGGER:
                v = span_or_none(b, mi.logger);
                break;
            case SL_SEVERITY:
                v = PyLong_FromLong(mi.has_sev ? (long)to_int32(mi.sev) : 7L);
                break;
            case SL_PAYLOAD:
                v = span_or_none(b, mi.payload);
                break;
            case SL_ENV_VERSION:
                v = span_or_none(b, mi.env_version);
                break;
            case SL_PID:
                if (!mi.has_pid || to_int32(mi.pid) == INT32_MIN) {
                    v = Py_NewRef(Py_None);
                }
                else {
                    v = PyLong_FromLong((long)to_int32(mi.pid));
                }
                break;
            case SL_HOSTNAME:
                v = span_or_none(b, mi.hostname);
                break;
            case SL_RAW:
                v = Py_NewRef(raw);
                break;
            case SL_FRAMED:
                v = framed_of(raw);
                break;
            case SL_SIZE:
                v = PyLong_FromSsize_t(PyBytes_GET_SIZE(raw));
                break;
            default: {
                const Py_ssize_t k = fslot[i];
                v = mi.got[k] ? field_value(b, &mi.found[k].first) : Py_NewRef(Py_None);
                break;
            }
            }
            if (v == NULL) {
                Py_CLEAR(out);
                goto done;
            }
            PyList_SET_ITEM(out, r * nn + i, v);
        }
    }
done:
    Py_DECREF(raws);
    Py_DECREF(names);
    return out;
}

/* ------------------------------------------------------------------------------------------------
 * Lua-side message writer (sandbox inject/encode path).
 *
 * `hsp_lua_encode` is a Lua C function (not a Python one): the sandbox bootstrap loads it with
 * package.loadlib from this very shared object and calls it on the flat values its flatten()
 * produced (bootstrap.lua, encode_table), so the values never cross into Python. It lays out the
 * bytes exactly as writer.write_message does after runtime._host_encode's conversions, and
 * returns nil for anything outside the common case (36-character Uuid, a value of an unexpected
 * type, a message that might not fit output_limit): the caller then takes the Python path, which
 * stays the reference. The Lua API is bound at run time (lua_bind, from the lupa engine's shared
 * object) so importing this module never depends on Lua symbols.
 * ---------------------------------------------------------------------------------------------- */
#include <dlfcn.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <pthread.h>

typedef struct lua_State lua_State;
#define HSP_LUA_TNIL 0
#define HSP_LUA_TBOOLEAN 1
#define HSP_LUA_TNUMBER 3
#define HSP_LUA_TSTRING 4
#define HSP_LUA_TTABLE 5

static struct {
    int ok;
    int crypto;
    int (*type)(lua_State *, int);
    int (*checkstack)(lua_State *, int);
    const char *(*tolstring)(lua_State *, int, size_t *);
    double (*tonumber)(lua_State *, int);
    int (*toboolean)(lua_State *, int);
    void (*rawgeti)(lua_State *, int, int);
    void (*rawseti)(lua_State *, int, int);
    void (*pushnil)(lua_State *);
    void (*pushboolean)(lua_State *, int);
    void (*pushnumber)(lua_State *, double);
    void (*pushvalue)(lua_State *, int);
    void (*rawget)(lua_State *, int);
    void (*rawset)(lua_State *, int);
    int (*getmetatable)(lua_State *, int);
    int (*next)(lua_State *, int);
    void (*insert)(lua_State *, int);
    void (*replace)(lua_State *, int);
    void (*pushlstring)(lua_State *, const char *, size_t);
    void (*settop)(lua_State *, int);
} lapi;

/* Per-thread state (plugins run in several threads; lupa releases the GIL while Lua runs),
 * reached through one pointer per call: each __thread access from a shared object is a call. */
typedef struct {
    unsigned char *buf;
    size_t cap;
    uint64_t rng[4];
    unsigned rng_gen;
} lw_tls;
static __thread lw_tls lw_state;
static unsigned lw_fork_gen = 1;     /* bumped in a forked child: its threads reseed */

static void
lw_after_fork(void)
{
    lw_fork_gen++;
}

static int
lw_reserve(lw_tls *T, size_t pos, size_t need)
{
    if (pos + need <= T->cap) {
        return 0;
    }
    size_t cap = T->cap ? T->cap : 4096;
    while (cap < pos + need) {
        cap *= 2;
    }
    unsigned char *b = realloc(T->buf, cap);
    if (b == NULL) {
        return -1;
    }
    T->buf = b;
    T->cap = cap;
    return 0;
}

static size_t
lw_varint(unsigned char *out, uint64_t v)
{
    size_t k = 0;
    while (v > 0x7F) {
        out[k++] = (unsigned char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    out[k++] = (unsigned char)v;
    return k;
}

/* runtime._c_ll / _c_ull: C casts as gcc compiles them for x86-64, spelled out. */
static int64_t
lw_c_ll(double d)
{
    if (d != d || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return INT64_MIN;
    }
    return (int64_t)d;
}

static uint64_t
lw_c_ull(double d)
{
    if (d != d) {
        return (uint64_t)1 << 63;
    }
    if (d < 9223372036854775808.0) {
        return (uint64_t)lw_c_ll(d);
    }
    return (uint64_t)lw_c_ll(d - 9223372036854775808.0) ^ ((uint64_t)1 << 63);
}

static uint64_t
lw_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
lw_next(lw_tls *T)
{
    /* xoshiro256**, seeded from getrandom() per thread and again after a fork */
    if (T->rng_gen != lw_fork_gen || (T->rng[0] | T->rng[1] | T->rng[2] | T->rng[3]) == 0) {
        if (getrandom(T->rng, sizeof T->rng, 0) != (ssize_t)sizeof T->rng) {
            uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&T->rng;
            for (int i = 0; i < 4; i++) {
                t += 0x9E3779B97F4A7C15ULL;
                uint64_t z = t;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
                T->rng[i] = z ^ (z >> 31);
            }
        }
        T->rng_gen = lw_fork_gen;
    }
    uint64_t *s = T->rng;
    uint64_t r = lw_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lw_rotl(s[3], 45);
    return r;
}

static int
lw_random_uuid(lw_tls *T, unsigned char *out)
{
    if (lapi.crypto) {
        if (getrandom(out, 16, 0) != 16) {
            return -1;
        }
    }
    else {
        uint64_t a = lw_next(T), b = lw_next(T);
        memcpy(out, &a, 8);
        memcpy(out + 8, &b, 8);
    }
    out[6] = (unsigned char)((out[6] & 0x0F) | 0x40);
    out[8] = (unsigned char)((out[8] & 0x0F) | 0xA0);
    return 0;
}

/* Appends tag + varint length + data. */
static int
lw_lenfield(lw_tls *T, size_t *pos, unsigned char tag, const char *data, size_t len)
{
    if (lw_reserve(T, *pos, len + 11) < 0) {
        return -1;
    }
    unsigned char *o = T->buf + *pos;
    o[0] = tag;
    size_t k = 1 + lw_varint(o + 1, (uint64_t)len);
    memcpy(o + k, data, len);
    *pos += k + len;
    return 0;
}

/* Closes a length-delimited region whose content starts at `start` and whose tag was written at
 * start - 2 with one byte reserved for the length at start - 1. */
static int
lw_close(lw_tls *T, size_t *pos, size_t start)
{
    size_t len = *pos - start;
    if (len < 0x80) {
        T->buf[start - 1] = (unsigned char)len;
        return 0;
    }
    unsigned char tmp[10];
    size_t k = lw_varint(tmp, (uint64_t)len);
    if (lw_reserve(T, *pos, k) < 0) {
        return -1;
    }
    memmove(T->buf + start - 1 + k, T->buf + start, len);
    memcpy(T->buf + start - 1, tmp, k);
    *pos += k - 1;
    return 0;
}

/* flat[1..n] are pushed once (stack slots 4..n+3); LW_GET selects one for the (L, LW) reads. */
#define LW_GET(i) (lw_ix = 3 + (i))
#define LW_POP() ((void)0)
#define LW lw_ix
#define LW_FAIL() do { lapi.settop(L, top); lapi.pushnil(L); return 1; } while (0)

/* Optional header string at flat index i: nil is skipped, a string is written, anything else
 * makes the caller fall back. */
static int
lw_header_string(lw_tls *T, lua_State *L, int i, unsigned char tag, size_t *pos)
{
    int lw_ix;
    LW_GET(i);
    int t = lapi.type(L, LW);
    int rc = 0;
    if (t == HSP_LUA_TSTRING) {
        size_t len;
        const char *s = lapi.tolstring(L, LW, &len);
        rc = lw_lenfield(T, pos, tag, s, len);
    }
    else if (t != HSP_LUA_TNIL) {
        rc = -1;
    }
    LW_POP();
    return rc;
}

static int
lw_header_number(lw_tls *T, lua_State *L, int i, unsigned char tag, size_t *pos)
{
    int lw_ix;
    LW_GET(i);
    int t = lapi.type(L, LW);
    int rc = 0;
    if (t == HSP_LUA_TNUMBER) {
        if (lw_reserve(T, *pos, 11) < 0) {
            rc = -1;
        }
        else {
            T->buf[*pos] = tag;
            *pos += 1 + lw_varint(T->buf + *pos + 1, lw_c_ull(lapi.tonumber(L, LW)));
        }
    }
    else if (t != HSP_LUA_TNIL) {
        rc = -1;
    }
    LW_POP();
    return rc;
}

/* Framed records appended by hsp_lua_encode_inject, waiting for take_injected(): per thread,
 * like the encode buffer (a plugin's Lua code and its host callbacks run on one thread). */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t count;     /* records */
    size_t pb_bytes;  /* their protobuf bytes (without framing) */
} lw_pending;
static __thread lw_pending lw_pend;

static int
lw_pend_append(const unsigned char *pb, size_t n)
{
    lw_pending *P = &lw_pend;
    unsigned char hdr[16];
    size_t k = 3 + lw_varint(hdr + 3, (uint64_t)n);
    hdr[0] = RECORD_SEPARATOR;
    hdr[1] = (unsigned char)(k - 2);
    hdr[2] = 0x08;
    hdr[k++] = UNIT_SEPARATOR;
    if (P->len + k + n > P->cap) {
        size_t cap = P->cap ? P->cap : 65536;
        while (cap < P->len + k + n) {
            cap *= 2;
        }
        unsigned char *b = realloc(P->buf, cap);
        if (b == NULL) {
            return -1;
        }
        P->buf = b;
        P->cap = cap;
    }
    memcpy(P->buf + P->len, hdr, k);
    memcpy(P->buf + P->len + k, pb, n);
    P->len += k + n;
    P->count++;
    P->pb_bytes += n;
    return 0;
}

/* hsp_lua_inject_raw(pb) -> true | false | nil: an input's inject_message(string). true: pb is a
 * valid Heka message (decode_message's accept/reject rules, nothing built) and its framed record
 * was appended to this thread's pending buffer; false: pb is not a valid message (nothing
 * appended); nil: not available here (take the Python path). */
int
hsp_lua_inject_raw(lua_State *L)
{
    size_t n = 0;
    if (!lapi.ok || lapi.type(L, 1) != HSP_LUA_TSTRING) {
        return 0;
    }
    const char *s = lapi.tolstring(L, 1, &n);
    if (s == NULL) {
        return 0;
    }
    /* st is only used to build objects: validation alone never reads it */
    if (decode_message_ex(NULL, (const unsigned char *)s, (Py_ssize_t)n, NULL, NULL, 1) != DEC_OK) {
        lapi.pushboolean(L, 0);
        return 1;
    }
    if (lw_pend_append((const unsigned char *)s, n) < 0) {
        return 0;
    }
    lapi.pushboolean(L, 1);
    return 1;
}

/* hsp_lua_encode(flat, n, output_limit) -> bytes | nil (nil: take the Python path). On success
 * flat[1..n] are cleared.
 * hsp_lua_encode_inject(flat, n, output_limit) -> true | nil: the same encoding, but the framed
 * record is appended to this thread's pending buffer (take_injected() hands it to the host)
 * instead of being returned; nil appends nothing. */
static int lw_encode(lua_State *L, int append);

int
hsp_lua_encode(lua_State *L)
{
    return lw_encode(L, 0);
}

int
hsp_lua_encode_inject(lua_State *L)
{
    return lw_encode(L, 1);
}

static int lw_encode_stack(lua_State *L, lw_tls *T, int n, double olimit, int append, int clear_flat);

static int
lw_encode(lua_State *L, int append)
{
    int top = 3;
    lw_tls *T = &lw_state;
    if (!lapi.ok) {
        return 0;
    }
    lapi.settop(L, 3);
    int n = (int)lapi.tonumber(L, 2);
    double olimit = lapi.tonumber(L, 3);
    if (n < 10 || n > 7000 || !lapi.checkstack(L, n + 2)) {
        LW_FAIL();          /* (Lua's C stack holds at most 8000 values) */
    }
    for (int i = 1; i <= n; i++) {
        lapi.rawgeti(L, 1, i);
    }
    return lw_encode_stack(L, T, n, olimit, append, 1);
}

/* One header of the message table as bootstrap.lua flatten() puts it in flat[]: pushed (nil for
 * a value flatten drops), or -1 when flatten would convert it (a number where a string goes, a
 * string where a number goes): the caller then leaves the message to flatten. */
#define LT_STRING 0
#define LT_NUMBER 1
#define LT_UUID 2
static int
lt_header(lua_State *L, const char *key, int kind)
{
    lapi.pushlstring(L, key, strlen(key));
    lapi.rawget(L, 1);
    int t = lapi.type(L, -1);
    if (kind == LT_STRING || kind == LT_UUID) {
        if (t == HSP_LUA_TSTRING) {
            return 0;
        }
        if (t == HSP_LUA_TNUMBER && kind == LT_STRING) {
            return -1;
        }
    }
    else {
        if (t == HSP_LUA_TNUMBER) {
            return 0;
        }
        if (t == HSP_LUA_TSTRING) {
            return -1;
        }
    }
    if (t != HSP_LUA_TNIL) {
        lapi.settop(L, -2);
        lapi.pushnil(L);
    }
    return 0;
}

/* hsp_lua_encode_table(msg, output_limit, append, logger, hostname, pid) -> bytes | true | nil:
 * flatten() and hsp_lua_encode(_inject) in one step, for the common message table: no metatable,
 * headers of their natural types, Fields a hash of string names to single string, number or
 * boolean values. Anything else returns nil before changing anything but the defaulted Logger,
 * Hostname and Pid (which flatten() then sets the same way) and takes the Lua path. Only for
 * unrestricted headers (flatten() overwrites restricted ones). */
int
hsp_lua_encode_table(lua_State *L)
{
    int top = 3;
    lw_tls *T = &lw_state;
    if (!lapi.ok) {
        return 0;
    }
    lapi.settop(L, 6);
    if (lapi.type(L, 1) != HSP_LUA_TTABLE || !lapi.checkstack(L, 40)) {
        LW_FAIL();
    }
    if (lapi.getmetatable(L, 1)) {
        LW_FAIL();
    }
    double olimit = lapi.tonumber(L, 2);
    int append = lapi.toboolean(L, 3);
    /* flatten(): `if msg.Logger == nil then msg.Logger = logger_name end`, Hostname, Pid */
    static const char *const defaulted[3] = {"Logger", "Hostname", "Pid"};
    for (int k = 0; k < 3; k++) {
        lapi.pushlstring(L, defaulted[k], strlen(defaulted[k]));
        lapi.rawget(L, 1);
        int t = lapi.type(L, -1);
        lapi.settop(L, -2);
        if (t == HSP_LUA_TNIL) {
            lapi.pushlstring(L, defaulted[k], strlen(defaulted[k]));
            lapi.pushvalue(L, 4 + k);
            lapi.rawset(L, 1);
        }
    }
    lapi.settop(L, 3);
    lapi.pushlstring(L, "Fields", 6);
    lapi.rawget(L, 1);
    lapi.replace(L, 3);                      /* slot 3: Fields; flat[] from slot 4 */
    if (lt_header(L, "Uuid", LT_UUID) < 0 || lt_header(L, "Timestamp", LT_NUMBER) < 0
        || lt_header(L, "Type", LT_STRING) < 0 || lt_header(L, "Logger", LT_STRING) < 0
        || lt_header(L, "Severity", LT_NUMBER) < 0 || lt_header(L, "Payload", LT_STRING) < 0
        || lt_header(L, "EnvVersion", LT_STRING) < 0 || lt_header(L, "Pid", LT_NUMBER) < 0
        || lt_header(L, "Hostname", LT_STRING) < 0) {
        LW_FAIL();
    }
    lapi.pushnumber(L, 0);                   /* flat[10]: the field count, set below */
    int nf = 0;
    if (lapi.type(L, 3) == HSP_LUA_TTABLE) {
        lapi.rawgeti(L, 3, 1);
        int t1 = lapi.type(L, -1);
        lapi.settop(L, -2);
        if (t1 == HSP_LUA_TTABLE) {
            LW_FAIL();                       /* the array form */
        }
        lapi.pushnil(L);
        while (lapi.next(L, 3)) {
            /* [..., key, value] -> [..., key, vt, false, 1, value, key] */
            int tv = lapi.type(L, -1);
            double vt = tv == HSP_LUA_TSTRING ? 0 : tv == HSP_LUA_TNUMBER ? 3 : tv == HSP_LUA_TBOOLEAN ? 4 : -1;
            if (lapi.type(L, -2) != HSP_LUA_TSTRING || vt < 0 || nf >= 1398 || !lapi.checkstack(L, 8)) {
                LW_FAIL();
            }
            lapi.pushvalue(L, -2);
            lapi.insert(L, -3);
            lapi.pushnumber(L, vt);
            lapi.insert(L, -3);
            lapi.pushboolean(L, 0);
            lapi.insert(L, -3);
            lapi.pushnumber(L, 1);
            lapi.insert(L, -3);
            lapi.insert(L, -2);
            nf++;
        }
    }
    lapi.pushnumber(L, nf);
    lapi.replace(L, 3 + 10);
    return lw_encode_stack(L, T, 10 + 5 * nf, olimit, append, 0);
}

/* The encoder proper: flat[1..n] are in stack slots 4..n+3. */
static int
lw_encode_stack(lua_State *L, lw_tls *T, int n, double olimit, int append, int clear_flat)
{
    int top = 3;
    size_t pos = 0;
    int lw_ix;
    if (lw_reserve(T, 0, 64) < 0) {
        LW_FAIL();
    }
    unsigned char *o = T->buf;
    o[0] = 0x0A;
    o[1] = 0x10;
    LW_GET(1);
    int t = lapi.type(L, LW);
    size_t len = 0;
    const char *s = NULL;
    if (t == HSP_LUA_TSTRING) {
        s = lapi.tolstring(L, LW, &len);
        if (len == 36) {
            LW_FAIL();
        }
    }
    else if (t != HSP_LUA_TNIL) {
        LW_FAIL();
    }
    if (s != NULL && len == 16) {
        memcpy(o + 2, s, 16);
    }
    else if (lw_random_uuid(T, o + 2) < 0) {
        LW_FAIL();
    }
    LW_POP();
    o[18] = 0x10;
    LW_GET(2);
    t = lapi.type(L, LW);
    int64_t ts;
    if (t == HSP_LUA_TNUMBER) {
        ts = lw_c_ll(lapi.tonumber(L, LW));
    }
    else if (t == HSP_LUA_TNIL) {
        struct timespec tv;
        clock_gettime(CLOCK_REALTIME, &tv);
        ts = (int64_t)tv.tv_sec * 1000000000 + tv.tv_nsec;
    }
    else {
        LW_FAIL();
    }
    LW_POP();
    pos = 19 + lw_varint(o + 19, (uint64_t)ts);
    if (lw_header_string(T, L, 3, 0x1A, &pos) < 0 || lw_header_string(T, L, 4, 0x22, &pos) < 0
        || lw_header_number(T, L, 5, 0x28, &pos) < 0 || lw_header_string(T, L, 6, 0x32, &pos) < 0
        || lw_header_string(T, L, 7, 0x3A, &pos) < 0 || lw_header_number(T, L, 8, 0x40, &pos) < 0
        || lw_header_string(T, L, 9, 0x4A, &pos) < 0) {
        LW_FAIL();
    }
    LW_GET(10);
    if (lapi.type(L, LW) != HSP_LUA_TNUMBER) {
        LW_FAIL();
    }
    double nfd = lapi.tonumber(L, LW);
    LW_POP();
    int p = 11;
    for (double fi = 0; fi < nfd; fi++) {
        if (p + 3 > n) {
            LW_FAIL();
        }
        /* name */
        LW_GET(p);
        if (lapi.type(L, LW) != HSP_LUA_TSTRING || lw_reserve(T, pos, 2) < 0) {
            LW_FAIL();
        }
        T->buf[pos] = 0x52;
        pos += 2;
        size_t fstart = pos;
        s = lapi.tolstring(L, LW, &len);
        if (lw_lenfield(T, &pos, 0x0A, s, len) < 0) {
            LW_FAIL();
        }
        LW_POP();
        /* value_type */
        LW_GET(p + 1);
        if (lapi.type(L, LW) != HSP_LUA_TNUMBER) {
            LW_FAIL();
        }
        double vtd = lapi.tonumber(L, LW);
        LW_POP();
        if (!(vtd == 0 || vtd == 1 || vtd == 2 || vtd == 3 || vtd == 4)) {
            LW_FAIL();
        }
        int vt = (int)vtd;
        if (vt != 0) {
            if (lw_reserve(T, pos, 2) < 0) {
                LW_FAIL();
            }
            T->buf[pos] = 0x10;
            T->buf[pos + 1] = (unsigned char)vt;
            pos += 2;
        }
        /* representation */
        LW_GET(p + 2);
        t = lapi.type(L, LW);
        if (t == HSP_LUA_TSTRING) {
            s = lapi.tolstring(L, LW, &len);
            if (lw_lenfield(T, &pos, 0x1A, s, len) < 0) {
                LW_FAIL();
            }
        }
        else if (!(t == HSP_LUA_TBOOLEAN && !lapi.toboolean(L, LW))) {
            LW_FAIL();
        }
        LW_POP();
        /* count */
        LW_GET(p + 3);
        if (lapi.type(L, LW) != HSP_LUA_TNUMBER) {
            LW_FAIL();
        }
        double cntd = lapi.tonumber(L, LW);
        LW_POP();
        if (!(cntd >= 1 && cntd <= (double)(n - p - 3)) || cntd != (double)(int)cntd) {
            LW_FAIL();
        }
        int cnt = (int)cntd;
        int v0 = p + 4;
        size_t pstart = 0;
        if (cnt > 1 && vt >= 2) {
            /* packed: tag + one reserved length byte */
            if (lw_reserve(T, pos, 2) < 0) {
                LW_FAIL();
            }
            T->buf[pos] = vt == 3 ? 0x3A : vt == 2 ? 0x32 : 0x42;
            pos += 2;
            pstart = pos;
        }
        for (int k = 0; k < cnt; k++) {
            LW_GET(v0 + k);
            t = lapi.type(L, LW);
            if (vt <= 1) {
                if (t != HSP_LUA_TSTRING) {
                    LW_FAIL();
                }
                s = lapi.tolstring(L, LW, &len);
                if (lw_lenfield(T, &pos, vt == 0 ? 0x22 : 0x2A, s, len) < 0) {
                    LW_FAIL();
                }
            }
            else {
                if (lw_reserve(T, pos, 12) < 0) {
                    LW_FAIL();
                }
                if (vt == 3) {
                    if (t != HSP_LUA_TNUMBER) {
                        LW_FAIL();
                    }
                    double d = lapi.tonumber(L, LW);
                    if (d == 0) {
                        d = 0.0;     /* lupa hands -0.0 to Python as the integer 0 */
                    }
                    if (cnt == 1) {
                        T->buf[pos++] = 0x39;
                    }
                    memcpy(T->buf + pos, &d, 8);   /* x86-64: little-endian */
                    pos += 8;
                }
                else if (vt == 2) {
                    if (t != HSP_LUA_TNUMBER) {
                        LW_FAIL();
                    }
                    if (cnt == 1) {
                        T->buf[pos++] = 0x30;
                    }
                    pos += lw_varint(T->buf + pos, (uint64_t)lw_c_ll(lapi.tonumber(L, LW)));
                }
                else {
                    if (t != HSP_LUA_TBOOLEAN) {
                        LW_FAIL();
                    }
                    if (cnt == 1) {
                        T->buf[pos++] = 0x40;
                    }
                    T->buf[pos++] = lapi.toboolean(L, LW) ? 1 : 0;
                }
            }
            LW_POP();
        }
        if (pstart && lw_close(T, &pos, pstart) < 0) {
            LW_FAIL();
        }
        if (lw_close(T, &pos, fstart) < 0) {
            LW_FAIL();
        }
        p = v0 + cnt;
    }
    if (p - 1 != n) {
        LW_FAIL();
    }
    if (olimit > 0 && (double)pos + 10 > olimit) {
        LW_FAIL();          /* the Python path computes lua_sandbox's buffer peak */
    }
    if (append && lw_pend_append(T->buf, pos) < 0) {
        LW_FAIL();
    }
    lapi.settop(L, 3);
    for (int i = 1; clear_flat && i <= n; i++) {
        lapi.pushnil(L);
        lapi.rawseti(L, 1, i);
    }
    if (append) {
        lapi.pushboolean(L, 1);
    }
    else {
        lapi.pushlstring(L, (const char *)T->buf, pos);
    }
    return 1;
}

PyDoc_STRVAR(take_injected_doc,
"take_injected() -> (framed: bytes, count: int, pb_bytes: int)\n\n"
"What hsp_lua_encode_inject appended on this thread since the last call (and empty it).");

static PyObject *
sp_take_injected(PyObject *self, PyObject *unused)
{
    lw_pending *P = &lw_pend;
    PyObject *data = PyBytes_FromStringAndSize((const char *)P->buf, (Py_ssize_t)P->len);
    if (data == NULL) {
        return NULL;
    }
    PyObject *res = Py_BuildValue("(Nnn)", data, (Py_ssize_t)P->count, (Py_ssize_t)P->pb_bytes);
    if (res == NULL) {
        return NULL;
    }
    P->len = 0;
    P->count = 0;
    P->pb_bytes = 0;
    if (P->cap > (1u << 22)) {   /* do not keep a burst's buffer */
        free(P->buf);
        P->buf = NULL;
        P->cap = 0;
    }
    return res;
}

#undef LW_GET
#undef LW_POP
#undef LW
#undef LW_FAIL

PyDoc_STRVAR(lua_bind_doc,
"lua_bind(path) -> bool\n\n"
"Binds hsp_lua_encode to the Lua C API of the already loaded engine at `path` (lupa's shared\n"
"object). False when a symbol is missing; the sandbox then encodes in Python.");

static PyObject *
sp_lua_bind(PyObject *self, PyObject *arg)
{
    PyObject *b = PyUnicode_EncodeFSDefault(arg);
    if (b == NULL) {
        return NULL;
    }
    void *h = dlopen(PyBytes_AS_STRING(b), RTLD_NOW | RTLD_NOLOAD);
    Py_DECREF(b);
    if (h == NULL) {
        Py_RETURN_FALSE;
    }
#define SYM(field, name) *(void **)(&lapi.field) = dlsym(h, name); if (lapi.field == NULL) { lapi.ok = 0; Py_RETURN_FALSE; }
    SYM(type, "lua_type");
    SYM(checkstack, "lua_checkstack");
    SYM(tolstring, "lua_tolstring");
    SYM(tonumber, "lua_tonumber");
    SYM(toboolean, "lua_toboolean");
    SYM(rawgeti, "lua_rawgeti");
    SYM(rawseti, "lua_rawseti");
    SYM(pushnil, "lua_pushnil");
    SYM(pushboolean, "lua_pushboolean");
    SYM(pushnumber, "lua_pushnumber");
    SYM(pushvalue, "lua_pushvalue");
    SYM(rawget, "lua_rawget");
    SYM(rawset, "lua_rawset");
    SYM(getmetatable, "lua_getmetatable");
    SYM(next, "lua_next");
    SYM(insert, "lua_insert");
    SYM(replace, "lua_replace");
    SYM(pushlstring, "lua_pushlstring");
    SYM(settop, "lua_settop");
#undef SYM
    const char *c = getenv("HSP_CRYPTO_UUID");
    lapi.crypto = c != NULL && c[0] != '\0';
    if (!lapi.ok && pthread_atfork(NULL, NULL, lw_after_fork) != 0) {
        Py_RETURN_FALSE;
    }
    lapi.ok = 1;
    Py_RETURN_TRUE;
}

static PyMethodDef speedups_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))sp_configure, METH_FASTCALL, configure_doc},
    {"decode", (PyCFunction)sp_decode, METH_O, decode_doc},
    {"scan", (PyCFunction)(void (*)(void))sp_scan, METH_FASTCALL, scan_doc},
    {"scan_raw", (PyCFunction)(void (*)(void))sp_scan_raw, METH_FASTCALL, scan_raw_doc},
    {"slots", (PyCFunction)(void (*)(void))sp_slots, METH_FASTCALL, slots_doc},
    {"decode_batch", (PyCFunction)(void (*)(void))sp_decode_batch, METH_FASTCALL, decode_batch_doc},
    {"lua_bind", (PyCFunction)sp_lua_bind, METH_O, lua_bind_doc},
    {"take_injected", (PyCFunction)sp_take_injected, METH_NOARGS, take_injected_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    speedups_state *st = get_state(module);
    if (st != NULL) {
        Py_VISIT(st->message_type);
        Py_VISIT(st->field_type);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    speedups_state *st = get_state(module);
    if (st != NULL) {
        Py_CLEAR(st->message_type);
        Py_CLEAR(st->field_type);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

PyDoc_STRVAR(module_doc,
"C accelerator for hindsight_py.message: strict Heka decode and framed stream scan.\n\n"
"decode.py and framing.py are the reference; this module must behave identically.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hindsight_py.message._speedups",
    .m_doc = module_doc,
    .m_size = sizeof(speedups_state),
    .m_methods = speedups_methods,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    speedups_state *st = get_state(m);
    st->message_type = NULL;
    st->field_type = NULL;
    return m;
}
