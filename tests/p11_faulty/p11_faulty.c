/* A PKCS#11 module for the tests that stands in front of a real one
 * (SoftHSM2) and fails the way a network HSM does when it restarts or its
 * link drops: every session opened before the failure is gone
 * (CKR_SESSION_HANDLE_INVALID, and the login with it), and while the HSM is
 * down no session opens (CKR_DEVICE_REMOVED).
 *
 * Environment:
 *   GH_P11_REAL   the real module (.so) every call goes to
 *   GH_P11_DROP   a file: each time its content (a number) grows, the
 *                 sessions opened before are dropped (closed on the real
 *                 module, so its login goes too)
 *   GH_P11_DOWN   a file: while it exists, C_OpenSession and every call on
 *                 a dropped session fail with CKR_DEVICE_REMOVED
 *   GH_P11_ABSENT a file: while it exists, the token is out of its slot (a
 *                 USB or PCIe HSM pulled, a network HSM's slot gone): as
 *                 GH_P11_DOWN, and C_GetSlotList lists no slot with a
 *                 token, C_GetTokenInfo answers CKR_TOKEN_NOT_PRESENT
 *   GH_P11_DECRYPT_FAIL a file: while it exists, C_Decrypt answers
 *                 CKR_GENERAL_ERROR (an HSM busy or failing for a moment)
 *   GH_P11_BADPIN a file: while it exists, C_Login answers CKR_PIN_INCORRECT
 *                 (the PIN was changed on the HSM), and each C_Login called
 *                 adds a line to <file>.logins
 *
 * A test fixture, not part of the gateway: one process's state in file
 * scope, guarded by a mutex. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define MAX_SESSIONS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST mine;
static long epoch; /* the last GH_P11_DROP value acted on */
static struct {
    CK_SESSION_HANDLE h;
    long epoch;
} sessions[MAX_SESSIONS];
static size_t nsessions;

static long drop_value(void)
{
    const char *path = getenv("GH_P11_DROP");
    FILE *f = path ? fopen(path, "r") : NULL;
    long v = 0;

    if (f == NULL) return 0;
    if (fscanf(f, "%ld", &v) != 1) v = 0;
    fclose(f);
    return v;
}

static int absent(void)
{
    const char *path = getenv("GH_P11_ABSENT");
    return path != NULL && access(path, F_OK) == 0;
}

static int down(void)
{
    const char *path = getenv("GH_P11_DOWN");
    return absent() || (path != NULL && access(path, F_OK) == 0);
}

/* Whether session <h> was dropped: a drop since it opened closes it on the
 * real module, and it stays unknown from then on. */
static int dropped(CK_SESSION_HANDLE h)
{
    long now = drop_value();
    int gone = 1;

    pthread_mutex_lock(&mu);
    if (now > epoch) {
        for (size_t i = 0; i < nsessions; i++)
            real->C_CloseSession(sessions[i].h);
        nsessions = 0;
        epoch = now;
    }
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i].h == h) gone = 0;
    pthread_mutex_unlock(&mu);
    return gone;
}

#define GUARD(h)                                                                                   \
    do {                                                                                           \
        if (dropped(h)) return down() ? CKR_DEVICE_REMOVED : CKR_SESSION_HANDLE_INVALID;           \
    } while (0)

static CK_RV f_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n)
{
    if (present && absent()) {
        *n = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(present, list, n);
}

static CK_RV f_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    return absent() ? CKR_TOKEN_NOT_PRESENT : real->C_GetTokenInfo(slot, info);
}

static CK_RV f_open_session(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
                            CK_SESSION_HANDLE_PTR out)
{
    CK_RV rv;

    if (down()) return CKR_DEVICE_REMOVED;
    (void)dropped(0); /* act on a drop before the new session counts */
    rv = real->C_OpenSession(slot, flags, app, notify, out);
    if (rv != CKR_OK) return rv;
    pthread_mutex_lock(&mu);
    if (nsessions < MAX_SESSIONS) {
        sessions[nsessions].h = *out;
        sessions[nsessions++].epoch = epoch;
    }
    pthread_mutex_unlock(&mu);
    return CKR_OK;
}

static CK_RV f_close_session(CK_SESSION_HANDLE h)
{
    GUARD(h);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i].h == h) sessions[i] = sessions[--nsessions];
    pthread_mutex_unlock(&mu);
    return real->C_CloseSession(h);
}

static CK_RV f_login(CK_SESSION_HANDLE h, CK_USER_TYPE t, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    const char *bad = getenv("GH_P11_BADPIN");

    GUARD(h);
    if (bad != NULL && access(bad, F_OK) == 0) {
        char path[512];
        FILE *f;
        snprintf(path, sizeof(path), "%s.logins", bad);
        if ((f = fopen(path, "a")) != NULL) {
            fputs("login\n", f);
            fclose(f);
        }
        return CKR_PIN_INCORRECT;
    }
    return real->C_Login(h, t, pin, len);
}

static CK_RV f_logout(CK_SESSION_HANDLE h)
{
    GUARD(h);
    return real->C_Logout(h);
}

static CK_RV f_find_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
    GUARD(h);
    return real->C_FindObjectsInit(h, t, n);
}

static CK_RV f_find(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n)
{
    GUARD(h);
    return real->C_FindObjects(h, o, max, n);
}

static CK_RV f_find_final(CK_SESSION_HANDLE h)
{
    GUARD(h);
    return real->C_FindObjectsFinal(h);
}

static CK_RV f_get_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
    GUARD(h);
    return real->C_GetAttributeValue(h, o, t, n);
}

static CK_RV f_generate(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                        CK_OBJECT_HANDLE_PTR o)
{
    GUARD(h);
    return real->C_GenerateKey(h, m, t, n, o);
}

static CK_RV f_destroy(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
    GUARD(h);
    return real->C_DestroyObject(h, o);
}

static CK_RV f_encrypt_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    GUARD(h);
    return real->C_EncryptInit(h, m, k);
}

static CK_RV f_encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG len, CK_BYTE_PTR out,
                       CK_ULONG_PTR outlen)
{
    GUARD(h);
    return real->C_Encrypt(h, in, len, out, outlen);
}

static CK_RV f_decrypt_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    GUARD(h);
    return real->C_DecryptInit(h, m, k);
}

static CK_RV f_decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG len, CK_BYTE_PTR out,
                       CK_ULONG_PTR outlen)
{
    const char *fail = getenv("GH_P11_DECRYPT_FAIL");

    GUARD(h);
    if (fail != NULL && access(fail, F_OK) == 0) {
        CK_BYTE scratch[256];
        CK_ULONG n = sizeof(scratch);
        real->C_Decrypt(h, in, len, scratch, &n); /* ends the operation, as a failure does */
        return CKR_GENERAL_ERROR;
    }
    return real->C_Decrypt(h, in, len, out, outlen);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    const char *path = getenv("GH_P11_REAL");
    CK_C_GetFunctionList get;
    void *dl;

    if (path == NULL || (dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
        return CKR_GENERAL_ERROR;
    *(void **)&get = dlsym(dl, "C_GetFunctionList");
    if (get == NULL || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
    mine = *real;
    mine.C_GetSlotList = f_get_slot_list;
    mine.C_GetTokenInfo = f_get_token_info;
    mine.C_OpenSession = f_open_session;
    mine.C_CloseSession = f_close_session;
    mine.C_Login = f_login;
    mine.C_Logout = f_logout;
    mine.C_FindObjectsInit = f_find_init;
    mine.C_FindObjects = f_find;
    mine.C_FindObjectsFinal = f_find_final;
    mine.C_GetAttributeValue = f_get_attr;
    mine.C_GenerateKey = f_generate;
    mine.C_DestroyObject = f_destroy;
    mine.C_EncryptInit = f_encrypt_init;
    mine.C_Encrypt = f_encrypt;
    mine.C_DecryptInit = f_decrypt_init;
    mine.C_Decrypt = f_decrypt;
    *out = &mine;
    return CKR_OK;
}
