/* fakeenv.h - a fake environment for kf_getenv_fn (tests only). */
#ifndef KF_TEST_FAKEENV_H
#define KF_TEST_FAKEENV_H

#include <string.h>

#define FAKEENV_MAX 32

typedef struct fakeenv {
    const char *name[FAKEENV_MAX];
    const char *value[FAKEENV_MAX];
    int n;
} fakeenv;

extern fakeenv fe; /* the environment fake_get reads */

static inline void fe_clear(void) { fe.n = 0; }

static inline void fe_set(const char *name, const char *value)
{
    for (int i = 0; i < fe.n; i++)
        if (!strcmp(fe.name[i], name)) {
            fe.value[i] = value;
            return;
        }
    fe.name[fe.n] = name;
    fe.value[fe.n++] = value;
}

static inline char *fake_get(const char *name)
{
    for (int i = 0; i < fe.n; i++)
        if (!strcmp(fe.name[i], name))
            return (char *)fe.value[i];
    return NULL;
}

#endif
