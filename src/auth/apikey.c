/* API key format, generation and Argon2id hashing. */
#include "auth/apikey.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Base62 characters, as a table: parsing runs on every authenticated request. */
static const uint8_t b62_char[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

bool gh_apikey_parse(gh_str key, gh_str *id, gh_str *secret)
{
    if (key.len != GH_APIKEY_LEN || memcmp(key.ptr, "gh_", 3) != 0 ||
        key.ptr[3 + GH_APIKEY_ID_LEN] != '_')
        return false;
    unsigned ok = 1;
    for (size_t i = 3; i < 3 + GH_APIKEY_ID_LEN; i++)
        ok &= b62_char[(unsigned char)key.ptr[i]];
    for (size_t i = 4 + GH_APIKEY_ID_LEN; i < key.len; i++)
        ok &= b62_char[(unsigned char)key.ptr[i]];
    if (!ok) return false;
    *id = gh_str_make(key.ptr + 3, GH_APIKEY_ID_LEN);
    *secret = gh_str_make(key.ptr + 4 + GH_APIKEY_ID_LEN, GH_APIKEY_SECRET_LEN);
    return true;
}

/* Writes <n> uniformly random base62 characters (rejection sampling: bytes
 * >= 248 are drawn again, so every character has the same chance). */
static int random_b62(char *out, size_t n)
{
    unsigned char buf[64];
    size_t filled = 0;

    while (filled < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1) return -1;
        for (size_t i = 0; i < sizeof(buf) && filled < n; i++)
            if (buf[i] < 248) out[filled++] = b62[buf[i] % 62];
    }
    gh_apikey_wipe(buf, sizeof(buf));
    return 0;
}

int gh_apikey_new_id(char out[GH_APIKEY_ID_LEN + 1])
{
    if (random_b62(out, GH_APIKEY_ID_LEN) != 0) return -1;
    out[GH_APIKEY_ID_LEN] = '\0';
    return 0;
}

/* 32 random bytes written as a 43-digit base62 number (big-endian). */
static int secret_b62(char out[GH_APIKEY_SECRET_LEN])
{
    unsigned char num[32];

    if (RAND_bytes(num, sizeof(num)) != 1) return -1;
    for (int d = GH_APIKEY_SECRET_LEN - 1; d >= 0; d--) {
        unsigned rem = 0;
        /* num /= 62, keeping the remainder: schoolbook long division. */
        for (size_t i = 0; i < sizeof(num); i++) {
            unsigned cur = (rem << 8) | num[i];
            num[i] = (unsigned char)(cur / 62);
            rem = cur % 62;
        }
        out[d] = b62[rem];
    }
    gh_apikey_wipe(num, sizeof(num));
    return 0;
}

int gh_apikey_generate(const char *id, const struct gh_argon2_params *p,
                       char key[GH_APIKEY_LEN + 1], char phc[GH_APIKEY_PHC_MAX])
{
    unsigned char salt[16];
    char *secret = key + 4 + GH_APIKEY_ID_LEN;
    int rc;

    if (strlen(id) != GH_APIKEY_ID_LEN) return -1;
    memcpy(key, "gh_", 3);
    memcpy(key + 3, id, GH_APIKEY_ID_LEN);
    key[3 + GH_APIKEY_ID_LEN] = '_';
    if (secret_b62(secret) != 0 || RAND_bytes(salt, sizeof(salt)) != 1) return -1;
    key[GH_APIKEY_LEN] = '\0';
    rc =
        argon2id_hash_encoded(p->iterations, p->memory_kib, p->parallelism, secret,
                              GH_APIKEY_SECRET_LEN, salt, sizeof(salt), 32, phc, GH_APIKEY_PHC_MAX);
    if (rc != ARGON2_OK) {
        gh_apikey_wipe(key, GH_APIKEY_LEN + 1);
        return -1;
    }
    return 0;
}

bool gh_apikey_verify(const char *phc, gh_str secret)
{
    /* Only Argon2id PHC strings: a row with another scheme is refused. */
    if (strncmp(phc, "$argon2id$", 10) != 0) return false;
    return argon2id_verify(phc, secret.ptr, secret.len) == ARGON2_OK;
}

void gh_apikey_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}
