/* kf_rules_pat.c - the subset of EREs kf_rules_pat.h describes: a parser
 * to a small tree, code generation for a Pike VM, and the VM.
 *
 * Why not glibc: regcomp() of the eleven built-in patterns was 2/3 of the
 * shim's start-up (0.66M instructions, 430 KiB), and regexec() with
 * sub-matches ~20,000 instructions per request head; this VM matches a
 * built-in pattern in a few hundred instructions and compiles in a few
 * thousand.
 */
#include "kf_rules_pat.h"

#include <string.h>

enum { OP_CHAR, OP_ANY, OP_SPLIT, OP_JMP, OP_SAVE, OP_MATCH };

/* ---- parse: pattern -> tree ---- */

enum { N_CHAR, N_ANY, N_GROUP, N_BRANCH };

typedef struct pnode {
    uint8_t kind;
    uint8_t quant; /* 0, '?' or '*' */
    uint8_t c;     /* N_CHAR */
    uint8_t group; /* N_GROUP: capture index (1..) */
    int16_t child; /* N_GROUP: first N_BRANCH; N_BRANCH: first piece (-1: empty) */
    int16_t next;  /* next piece of a sequence, or next branch */
} pnode;

typedef struct pstate {
    const char *re;
    size_t n, i, end; /* end: index of the final '$' */
    pnode nd[KF_PAT_MAX_OPS];
    int nn;
    int ngroups;
} pstate;

static int new_node(pstate *ps, int kind)
{
    if (ps->nn == KF_PAT_MAX_OPS)
        return -1;
    pnode *d = &ps->nd[ps->nn];
    memset(d, 0, sizeof *d);
    d->kind = (uint8_t)kind;
    d->child = d->next = -1;
    return ps->nn++;
}

static int is_quant(char c)
{
    return c == '*' || c == '?' || c == '+' || c == '{';
}

static int parse_branches(pstate *ps, int *first, unsigned *minlen);

/* One atom at ps->i; sets *minlen. Returns the node or -1 (not in subset). */
static int parse_atom(pstate *ps, unsigned *minlen)
{
    char c = ps->re[ps->i];
    int k;
    *minlen = 1;
    if (c == '(') {
        if (ps->ngroups == KF_PAT_MAX_GROUPS || (k = new_node(ps, N_GROUP)) < 0)
            return -1;
        ps->nd[k].group = (uint8_t)++ps->ngroups;
        ps->i++;
        int first;
        if (parse_branches(ps, &first, minlen) < 0 || ps->i >= ps->end || ps->re[ps->i] != ')')
            return -1;
        ps->nd[k].child = (int16_t)first;
        ps->i++;
        return k;
    }
    if (c == '.') {
        ps->i++;
        return new_node(ps, N_ANY);
    }
    if (c == '\\') {
        /* Only an escaped special character is a plain literal in glibc's
         * EREs; `\w`, `\<`, `\1`... mean something else. */
        if (ps->i + 1 >= ps->end || !ps->re[ps->i + 1] ||
            !strchr(".[]()*+?{}|^$\\/", ps->re[ps->i + 1]))
            return -1;
        c = ps->re[ps->i + 1];
        ps->i += 2;
    } else {
        if (c == '\0' || strchr("[]{}+*?^$|)", c))
            return -1;
        ps->i++;
    }
    if ((k = new_node(ps, N_CHAR)) < 0)
        return -1;
    ps->nd[k].c = (uint8_t)c;
    return k;
}

/* A sequence of pieces up to ')', '|' or the final '$'. *first = -1 when
 * empty. Returns 0, or -1 when not in the subset. */
static int parse_seq(pstate *ps, int *first, unsigned *minlen)
{
    int last = -1;
    *first = -1;
    *minlen = 0;
    while (ps->i < ps->end && ps->re[ps->i] != ')' && ps->re[ps->i] != '|') {
        unsigned ml;
        int k = parse_atom(ps, &ml);
        if (k < 0)
            return -1;
        if (ps->i < ps->end && (ps->re[ps->i] == '*' || ps->re[ps->i] == '?')) {
            /* A starred piece that can match nothing would loop without
             * consuming; POSIX's rules for such empty iterations are
             * subtle: leave them to glibc. */
            if (ps->re[ps->i] == '*' && ml == 0)
                return -1;
            ps->nd[k].quant = (uint8_t)ps->re[ps->i++];
            ml = 0;
            if (ps->i < ps->end && is_quant(ps->re[ps->i]))
                return -1;
        } else if (ps->i < ps->end && is_quant(ps->re[ps->i])) {
            return -1;
        }
        *minlen += ml;
        if (last < 0)
            *first = k;
        else
            ps->nd[last].next = (int16_t)k;
        last = k;
    }
    return 0;
}

/* Alternatives of a group, each non-empty. *minlen: the shortest. */
static int parse_branches(pstate *ps, int *first, unsigned *minlen)
{
    int last = -1;
    *minlen = ~0u;
    for (;;) {
        int b = new_node(ps, N_BRANCH), seq;
        unsigned ml;
        if (b < 0 || parse_seq(ps, &seq, &ml) < 0 || seq < 0)
            return -1; /* "()" or "(a|)": glibc accepts them; not worth the subtleties */
        ps->nd[b].child = (int16_t)seq;
        if (ml < *minlen)
            *minlen = ml;
        if (last < 0)
            *first = b;
        else
            ps->nd[last].next = (int16_t)b;
        last = b;
        if (ps->i < ps->end && ps->re[ps->i] == '|') {
            ps->i++;
            continue;
        }
        return 0;
    }
}

/* ---- code generation: tree -> Pike VM program ---- */

typedef struct gen {
    kf_pat_op *ops;
    unsigned n;
    int full;
} gen;

static unsigned emit(gen *g, int op, unsigned c, unsigned x, unsigned y)
{
    if (g->n == KF_PAT_MAX_OPS) {
        g->full = 1;
        return 0;
    }
    g->ops[g->n] = (kf_pat_op){ (uint8_t)op, (uint8_t)c, (uint16_t)x, (uint16_t)y };
    return g->n++;
}

static void gen_seq(const pstate *ps, gen *g, int k);

static void gen_branches(const pstate *ps, gen *g, int b)
{
    unsigned jumps[KF_PAT_MAX_OPS], nj = 0;
    for (; b >= 0 && !g->full; b = ps->nd[b].next) {
        if (ps->nd[b].next < 0) {
            gen_seq(ps, g, ps->nd[b].child);
            break;
        }
        unsigned split = emit(g, OP_SPLIT, 0, 0, 0);
        g->ops[split].x = (uint16_t)g->n;
        gen_seq(ps, g, ps->nd[b].child);
        jumps[nj++] = emit(g, OP_JMP, 0, 0, 0);
        g->ops[split].y = (uint16_t)g->n;
    }
    for (unsigned i = 0; i < nj && !g->full; i++)
        g->ops[jumps[i]].x = (uint16_t)g->n;
}

static void gen_atom(const pstate *ps, gen *g, const pnode *d)
{
    switch (d->kind) {
    case N_CHAR: emit(g, OP_CHAR, d->c, 0, 0); break;
    case N_ANY: emit(g, OP_ANY, 0, 0, 0); break;
    default:
        emit(g, OP_SAVE, 0, 2u * d->group, 0);
        gen_branches(ps, g, d->child);
        emit(g, OP_SAVE, 0, 2u * d->group + 1, 0);
    }
}

/* x? : SPLIT a, end; a: x; end:      x* : l: SPLIT a, end; a: x; JMP l; end: */
static void gen_seq(const pstate *ps, gen *g, int k)
{
    for (; k >= 0 && !g->full; k = ps->nd[k].next) {
        const pnode *d = &ps->nd[k];
        if (!d->quant) {
            gen_atom(ps, g, d);
            continue;
        }
        unsigned split = emit(g, OP_SPLIT, 0, 0, 0);
        g->ops[split].x = (uint16_t)g->n;
        gen_atom(ps, g, d);
        if (d->quant == '*')
            emit(g, OP_JMP, 0, split, 0);
        g->ops[split].y = (uint16_t)g->n;
    }
}

/* A `.*` whose exit reaches MATCH through SAVEs only, (L: SPLIT a, e;
 * a: ANY; JMP L; e: SAVE* MATCH), matches whatever rest the path has (it
 * has no NUL). Mark its ANY (c = 1, x = e): the VM stops there when it is
 * the highest-priority thread (kf_pat_match). */
static void mark_tails(kf_pat_op *ops, unsigned n)
{
    for (unsigned a = 1; a + 1 < n; a++) {
        unsigned l = ops[a + 1].x, e;
        if (ops[a].op != OP_ANY || ops[a + 1].op != OP_JMP || l + 1 != a ||
            ops[l].op != OP_SPLIT || ops[l].x != a)
            continue;
        for (e = ops[l].y; e < n && ops[e].op == OP_SAVE; e++)
            ;
        if (e < n && ops[e].op == OP_MATCH) {
            ops[a].c = 1;
            ops[a].x = ops[l].y;
        }
    }
}

int kf_pat_compile(const char *re, size_t n, kf_pat_op *ops, kf_pat *p)
{
    /* ^...$ with the final '$' unescaped (an even run of '\' before it) */
    if (n < 2 || re[0] != '^' || re[n - 1] != '$')
        return -1;
    size_t bs = 0;
    while (bs < n - 2 && re[n - 2 - bs] == '\\')
        bs++;
    if (bs % 2)
        return -1;
    static const pstate zero;
    pstate ps = zero;
    ps.re = re;
    ps.n = n;
    ps.i = 1;
    ps.end = n - 1;
    int first;
    unsigned ml;
    if (parse_seq(&ps, &first, &ml) < 0 || ps.i != ps.end)
        return -1; /* a top-level '|' or an unmatched ')' stops short of the end */
    gen g = { ops, 0, 0 };
    gen_seq(&ps, &g, first);
    emit(&g, OP_MATCH, 0, 0, 0);
    if (g.full)
        return -1;
    p->ops = ops;
    p->nops = (uint16_t)g.n;
    p->ngroups = (uint8_t)ps.ngroups;
    p->lead = 0;
    while (p->lead < g.n && ops[p->lead].op == OP_CHAR)
        p->lead++;
    p->nfork = 0;
    for (unsigned i = 0; i < g.n; i++)
        p->nfork += ops[i].op == OP_SPLIT || ops[i].op == OP_SAVE;
    mark_tails(ops, g.n);
    return 0;
}

/* ---- the VM ---- */

typedef struct vm {
    const kf_pat *p;
    unsigned nsave;    /* capture slots tracked: 2 per reported group */
    uint32_t gen;
    uint32_t mark[KF_PAT_MAX_OPS]; /* pc already in the list being built */
} vm;

typedef struct tlist {
    unsigned n;
    uint16_t pc[KF_PAT_MAX_OPS];
    regoff_t *caps; /* n * nsave */
} tlist;

/* Add pc's thread (following jumps, splits and saves, in priority order) to
 * l. Depth is bounded by the program size: each pc is visited once. */
static void add(vm *v, tlist *l, unsigned pc, regoff_t *caps, regoff_t pos)
{
    if (v->mark[pc] == v->gen)
        return;
    v->mark[pc] = v->gen;
    const kf_pat_op *o = &v->p->ops[pc];
    switch (o->op) {
    case OP_JMP:
        add(v, l, o->x, caps, pos);
        return;
    case OP_SPLIT:
        add(v, l, o->x, caps, pos);
        add(v, l, o->y, caps, pos);
        return;
    case OP_SAVE:
        if (o->x < v->nsave) {
            regoff_t old = caps[o->x];
            caps[o->x] = pos;
            add(v, l, pc + 1, caps, pos);
            caps[o->x] = old;
        } else {
            add(v, l, pc + 1, caps, pos);
        }
        return;
    default:
        l->pc[l->n] = (uint16_t)pc;
        regoff_t *to = l->caps + (size_t)l->n * v->nsave;
        for (unsigned i = 0; i < v->nsave; i++) /* a few slots: no memcpy call */
            to[i] = caps[i];
        l->n++;
    }
}

/* The winning thread's captures into m[0..nm) as regexec reports them. */
static inline int report(const regoff_t *caps, unsigned nsave, size_t n, regmatch_t *m, size_t nm)
{
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)n;
    for (size_t g = 1; g < nm; g++) {
        int set = nsave && caps[2 * g] >= 0 && caps[2 * g + 1] >= caps[2 * g];
        m[g].rm_so = set ? caps[2 * g] : -1;
        m[g].rm_eo = set ? caps[2 * g + 1] : -1;
    }
    return 1;
}

/* The highest-priority thread is in a tail `.*` (mark_tails): it takes the
 * rest of the path, then the SAVEs from e on see the end. */
static int tail_match(const kf_pat *p, unsigned e, const regoff_t *caps, unsigned nsave, size_t n,
                      regmatch_t *m, size_t nm)
{
    regoff_t fin[2 * (KF_PAT_MAX_GROUPS + 1)];
    memcpy(fin, caps, nsave * sizeof *caps);
    for (; p->ops[e].op == OP_SAVE; e++)
        if (p->ops[e].x < nsave)
            fin[p->ops[e].x] = (regoff_t)n;
    return report(fin, nsave, n, m, nm);
}

/* The Pike VM over s[lead..n) (the caller checked the lead, the NULs and nm). */
static int pike_match(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm)
{
    vm v;
    v.p = p;
    v.nsave = nm > 1 ? 2u * (unsigned)nm : 0;
    v.gen = 1;
    memset(v.mark, 0, p->nops * sizeof v.mark[0]);
    /* Bounded: at most nops threads per list, nsave <= 20 slots each. */
    regoff_t capbuf[2][v.nsave ? p->nops * v.nsave : 1];
    regoff_t init[2 * (KF_PAT_MAX_GROUPS + 1)];
    for (unsigned i = 0; i < v.nsave; i++)
        init[i] = -1;
    tlist a = { .n = 0, .caps = capbuf[0] }, b = { .n = 0, .caps = capbuf[1] };
    tlist *cl = &a, *nl = &b;
    add(&v, cl, p->lead, init, (regoff_t)p->lead);
    for (size_t pos = p->lead; pos < n && cl->n; pos++) {
        unsigned char c = (unsigned char)s[pos];
        v.gen++;
        nl->n = 0;
        for (unsigned t = 0; t < cl->n; t++) {
            const kf_pat_op *o = &p->ops[cl->pc[t]];
            regoff_t *caps = cl->caps + (size_t)t * v.nsave;
            if (o->op == OP_ANY && o->c && nl->n == 0)
                return tail_match(p, o->x, caps, v.nsave, n, m, nm);
            if (o->op == OP_ANY || (o->op == OP_CHAR && o->c == c))
                add(&v, nl, cl->pc[t] + 1u, caps, (regoff_t)(pos + 1));
        }
        tlist *tmp = cl;
        cl = nl;
        nl = tmp;
    }
    for (unsigned t = 0; t < cl->n; t++)
        if (p->ops[cl->pc[t]].op == OP_MATCH)
            return report(cl->caps + (size_t)t * v.nsave, v.nsave, n, m, nm);
    return 0;
}

/* ---- bounded backtracking (RE2's "BitState") ----
 *
 * For the short paths requests carry: a depth-first walk of the program in
 * priority order (SPLIT's x before y), which visits each (pc, position)
 * pair at most once. The first walk to reach MATCH at the end is the
 * leftmost-first match, the very one the Pike VM reports: both explore
 * threads in the same priority order, and a pair already visited either
 * led to no match (the walk went on) or ended it, whatever captures the
 * second visitor carries. Linear like the VM, but no thread lists and no
 * capture copies: a few instructions per byte. Used when the visited
 * bitmap and the job stack fit their fixed bounds (below); else the VM. */

#define BT_SPAN 64  /* positions lead..n: one 64-bit row of the visited map per pc */
#define BT_JOBS 256 /* pending alternatives and capture restores */

typedef struct bt_job {
    uint16_t pc;    /* BT_RESTORE: capture slot to restore */
    uint16_t kind;  /* BT_TRY or BT_RESTORE */
    regoff_t v;     /* BT_TRY: position; BT_RESTORE: old value */
} bt_job;

enum { BT_TRY, BT_RESTORE };

static int bt_fits(const kf_pat *p, size_t n)
{
    size_t span = n - p->lead + 1;
    /* every job is pushed by a SPLIT or SAVE at a pair visited once */
    return span <= BT_SPAN && span * p->nfork <= BT_JOBS;
}

static int bt_match(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm)
{
    const kf_pat_op *ops = p->ops;
    const unsigned nsave = nm > 1 ? 2u * (unsigned)nm : 0;
    const size_t base = p->lead;
    /* Fixed-size clears where they cover it: stores, not library calls. */
    uint64_t seen[KF_PAT_MAX_OPS]; /* seen[pc] bit (pos - lead): visited */
    if (p->nops <= 32)
        for (unsigned i = 0; i < 32; i++)
            seen[i] = 0;
    else
        memset(seen, 0, p->nops * sizeof seen[0]);
    regoff_t caps[2 * (KF_PAT_MAX_GROUPS + 1)];
    for (unsigned i = 0; i < 2 * (KF_PAT_MAX_GROUPS + 1); i++)
        caps[i] = -1;
    bt_job job[BT_JOBS];
    unsigned nj = 0;
    job[nj++] = (bt_job){ (uint16_t)base, BT_TRY, (regoff_t)base };
    while (nj) {
        bt_job j = job[--nj];
        if (j.kind == BT_RESTORE) {
            caps[j.pc] = j.v;
            continue;
        }
        unsigned pc = j.pc;
        size_t pos = (size_t)j.v;
        for (;;) {
            uint64_t bit = (uint64_t)1 << (pos - base);
            if (seen[pc] & bit)
                break;
            seen[pc] |= bit;
            const kf_pat_op *o = &ops[pc];
            switch (o->op) {
            case OP_CHAR:
                if (pos == n || (unsigned char)s[pos] != o->c)
                    goto fail;
                pc++;
                pos++;
                continue;
            case OP_ANY:
                if (o->c) /* a tail `.*`: the rest of the path matches */
                    return tail_match(p, o->x, caps, nsave, n, m, nm);
                if (pos == n)
                    goto fail;
                pc++;
                pos++;
                continue;
            case OP_SPLIT:
                job[nj++] = (bt_job){ o->y, BT_TRY, (regoff_t)pos };
                pc = o->x;
                continue;
            case OP_JMP:
                pc = o->x;
                continue;
            case OP_SAVE:
                if (o->x < nsave) {
                    job[nj++] = (bt_job){ o->x, BT_RESTORE, caps[o->x] };
                    caps[o->x] = (regoff_t)pos;
                }
                pc++;
                continue;
            default: /* OP_MATCH */
                if (pos == n)
                    return report(caps, nsave, n, m, nm);
                goto fail;
            }
        }
    fail:;
    }
    return 0;
}

/* The checks both matchers rely on. */
static int pre_match(const kf_pat *p, const char *s, size_t n, size_t known, size_t *nm)
{
    if (n < p->lead || n > 0x7fffffff)
        return 0;
    for (size_t i = known; i < p->lead; i++)
        if ((unsigned char)s[i] != p->ops[i].c)
            return 0;
    if (memchr(s + p->lead, '\0', n - p->lead))
        return 0; /* '.' never matches NUL, no literal is NUL */
    if (*nm > KF_PAT_MAX_GROUPS + 1u)
        *nm = KF_PAT_MAX_GROUPS + 1u;
    return 1;
}

int kf_pat_match_from(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm,
                      size_t known)
{
    if (!pre_match(p, s, n, known, &nm))
        return 0;
    return bt_fits(p, n) ? bt_match(p, s, n, m, nm) : pike_match(p, s, n, m, nm);
}

int kf_pat_match(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm)
{
    return kf_pat_match_from(p, s, n, m, nm, 0);
}

int kf_pat_match_pike(const kf_pat *p, const char *s, size_t n, regmatch_t *m, size_t nm)
{
    if (!pre_match(p, s, n, 0, &nm))
        return 0;
    return pike_match(p, s, n, m, nm);
}
