/* dl_bind.h - dl.c's use of dl_bind.c. */
#ifndef KF_DL_BIND_H
#define KF_DL_BIND_H

/* h was just returned by dlopen(file, ... | RTLD_DEEPBIND) and its object
 * was not loaded before: bind the hooks into it and what it brought in,
 * and log what was done (INFO once per process, DEBUG per load). */
void kf_dl_bind(void *h, const char *file);

#endif
