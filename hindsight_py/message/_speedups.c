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

static int
decode_field(speedups_state *st, const unsigned char *b, Py_ssize_t *pp, Py_ssize_t end,
             PyObject **out)
{
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
                if (objvec_push(&values, PyFloat_FromDouble(read_double(b + p))) < 0) {
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
                    if (objvec_push(&values, PyFloat_FromDouble(read_double(b + p))) < 0) {
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

/* decode.py decode_message over b[0..e). */
static int
decode_message(speedups_state *st, const unsigned char *b, Py_ssize_t e, PyObject **out)
{
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
            PyObject *f = NULL;
            int rc = decode_field(st, b, &p, e, &f);
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
    int rc = decode_message(st, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &msg);
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
        if (decode) {
            msg = NULL;
            int rc = decode_message(st, b + hend, mlen, &msg);
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

static PyMethodDef speedups_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))sp_configure, METH_FASTCALL, configure_doc},
    {"decode", (PyCFunction)sp_decode, METH_O, decode_doc},
    {"scan", (PyCFunction)(void (*)(void))sp_scan, METH_FASTCALL, scan_doc},
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
