/* objtab.c - per-object state keyed by pointer (see objtab.h). */
#include "objtab.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kf_shim.h"

struct kf_obj_ent {
    const void *key;
    void *rec;
    int kind;
    struct kf_obj_ent *next;
};

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kf_obj_ent **tab_bucket;
static size_t tab_nbucket;  /* power of two, 0 until first put */
static unsigned long tab_total;
static unsigned long tab_count[KF_OBJ_NKINDS];

static size_t obj_hash(int kind, const void *key, size_t nb)
{
    uint64_t h = (uint64_t)(uintptr_t)key ^ ((uint64_t)kind << 56);
    h *= 0x9e3779b97f4a7c15ull; /* Fibonacci hashing: heap pointers share low bits */
    return (size_t)(h >> 32) & (nb - 1);
}

/* Called with the lock held. Returns 0, or -1 when out of memory (the
 * table keeps working at its old size). */
static int tab_grow(void)
{
    size_t nb = tab_nbucket ? tab_nbucket * 2 : 64;
    struct kf_obj_ent **b = calloc(nb, sizeof *b);
    if (!b)
        return tab_nbucket ? 0 : -1;
    for (size_t i = 0; i < tab_nbucket; i++) {
        struct kf_obj_ent *e = tab_bucket[i], *next;
        for (; e; e = next) {
            next = e->next;
            size_t h = obj_hash(e->kind, e->key, nb);
            e->next = b[h];
            b[h] = e;
        }
    }
    free(tab_bucket);
    tab_bucket = b;
    tab_nbucket = nb;
    return 0;
}

static struct kf_obj_ent **tab_slot(int kind, const void *key)
{
    struct kf_obj_ent **pp = &tab_bucket[obj_hash(kind, key, tab_nbucket)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->key == key && (*pp)->kind == kind)
            return pp;
    return pp;
}

void *kf_obj_get(int kind, const void *key)
{
    if (kind <= 0 || kind >= KF_OBJ_NKINDS || !key)
        return NULL;
    if (__atomic_load_n(&tab_count[kind], __ATOMIC_RELAXED) == 0)
        return NULL; /* the common case for processes we have nothing to do in */
    void *rec = NULL;
    pthread_mutex_lock(&tab_lock);
    if (tab_nbucket) {
        struct kf_obj_ent **pp = tab_slot(kind, key);
        if (*pp)
            rec = (*pp)->rec;
    }
    pthread_mutex_unlock(&tab_lock);
    return rec;
}

void *kf_obj_put(int kind, const void *key, void *rec)
{
    if (kind <= 0 || kind >= KF_OBJ_NKINDS || !key)
        return rec;
    void *old = rec;
    pthread_mutex_lock(&tab_lock);
    if ((tab_total + 1 > tab_nbucket * 2 && tab_grow() < 0) || !tab_nbucket)
        goto out;
    struct kf_obj_ent **pp = tab_slot(kind, key);
    if (*pp) {
        old = (*pp)->rec;
        (*pp)->rec = rec;
        goto out;
    }
    struct kf_obj_ent *e = malloc(sizeof *e);
    if (!e)
        goto out;
    e->key = key;
    e->rec = rec;
    e->kind = kind;
    e->next = NULL;
    *pp = e;
    tab_total++;
    __atomic_add_fetch(&tab_count[kind], 1, __ATOMIC_RELAXED);
    old = NULL;
out:
    pthread_mutex_unlock(&tab_lock);
    return old;
}

void *kf_obj_take(int kind, const void *key)
{
    if (kind <= 0 || kind >= KF_OBJ_NKINDS || !key)
        return NULL;
    if (__atomic_load_n(&tab_count[kind], __ATOMIC_RELAXED) == 0)
        return NULL;
    void *rec = NULL;
    struct kf_obj_ent *e = NULL;
    pthread_mutex_lock(&tab_lock);
    if (tab_nbucket) {
        struct kf_obj_ent **pp = tab_slot(kind, key);
        if (*pp) {
            e = *pp;
            *pp = e->next;
            rec = e->rec;
            tab_total--;
            __atomic_sub_fetch(&tab_count[kind], 1, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&tab_lock);
    free(e);
    return rec;
}

unsigned long kf_obj_count(int kind)
{
    if (kind <= 0 || kind >= KF_OBJ_NKINDS)
        return 0;
    return __atomic_load_n(&tab_count[kind], __ATOMIC_RELAXED);
}

/* fork (shim.c's handlers): no other thread may hold the lock while the
 * child is made; the child is single-threaded and gets a fresh mutex
 * (records stay valid). */
void kf_objtab_prepare(void) { pthread_mutex_lock(&tab_lock); }
void kf_objtab_parent(void) { pthread_mutex_unlock(&tab_lock); }
void kf_objtab_child(void) { pthread_mutex_init(&tab_lock, NULL); }

/* ---- shared facts ---- */

static int curl_live;

int kf_curl_layer_live(void) { return __atomic_load_n(&curl_live, __ATOMIC_RELAXED); }
void kf_curl_layer_set_live(void) { __atomic_store_n(&curl_live, 1, __ATOMIC_RELAXED); }

int kf_addr_in_libcurl(const void *addr)
{
    Dl_info di;
    if (!addr || !dladdr(addr, &di) || !di.dli_fname)
        return 0;
    const char *base = strrchr(di.dli_fname, '/');
    return strstr(base ? base + 1 : di.dli_fname, "libcurl") != NULL;
}
