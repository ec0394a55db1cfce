/* Optimizers (SGD, Adam, AdamW) and learning-rate schedulers, torch.optim 1.13's arithmetic:
 * see optim.h. The tables there generate the names, the hyperparameter lists and the
 * dispatch below; each row's functions are nn_<name>_check, nn_<name>_nbuf and one update
 * kernel per dtype (optimizers), nn_<name>_sched_check and nn_<name>_sched_lr (schedulers). */
#include "core/optim.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn_impl.h"

#define NN_UNPAREN_(...) __VA_ARGS__
/* Number of hyperparameters in a row's parenthesised list (a leading dummy keeps an empty
 * list legal C). */
#define NN_HCOUNT_(prm) \
    ((int)(sizeof((struct nn_hparam[]){{0}, NN_UNPAREN_ prm}) / sizeof(struct nn_hparam)) - 1)

/* ---- names ---------------------------------------------------------------------------- */
const char *const nn_sched_modes[] = {"min", "max", NULL};
const char *const nn_sched_threshold_modes[] = {"rel", "abs", NULL};

#define NN_OPTIM_INFO_(X, ID, nm, tn, prm) \
    [NN_OPTIM_##ID] = {                    \
        .name = #nm, .torch = #tn, .nparams = NN_HCOUNT_(prm), .params = {NN_UNPAREN_ prm}},
const struct nn_optim_info nn_optims[NN_OPTIM_COUNT] = {NN_OPTIM_TABLE(NN_OPTIM_INFO_, _)};
#undef NN_OPTIM_INFO_

#define NN_SCHED_INFO_(X, ID, nm, tn, met, prm)    \
    [NN_SCHED_##ID] = {.name = #nm,                \
                       .torch = #tn,               \
                       .metric = met,              \
                       .nparams = NN_HCOUNT_(prm), \
                       .params = {NN_UNPAREN_ prm}},
const struct nn_sched_info nn_scheds[NN_SCHED_COUNT] = {NN_SCHED_TABLE(NN_SCHED_INFO_, _)};
#undef NN_SCHED_INFO_

_Static_assert(sizeof nn_optims / sizeof nn_optims[0] == NN_OPTIM_COUNT, "one info per optimizer");
_Static_assert(sizeof nn_scheds / sizeof nn_scheds[0] == NN_SCHED_COUNT, "one info per scheduler");

/* "what.type: unknown <kind> \"x\" (valid: a, b, c)" */
static enum nn_status unknown_name(const char *what, const char *kind, const char *name,
                                   const char *const *names, int n, struct nn_err *err)
{
    char list[NN_ERR_LEN];
    size_t at = 0;
    list[0] = '\0';
    for (int k = 0; k < n && at < sizeof list; k++)
        at += (size_t)snprintf(list + at, sizeof list - at, k ? ", %s" : "%s", names[k]);
    return nn_err_set(err, NN_EINVAL, "%s.type: unknown %s \"%.40s\" (valid: %s)", what, kind, name,
                      list);
}

enum nn_status nn_optim_lookup(const char *name, enum nn_optim_type *type, struct nn_err *err)
{
    const char *names[NN_OPTIM_COUNT];
    for (int k = 0; k < NN_OPTIM_COUNT; k++) {
        if (!strcmp(name, nn_optims[k].name) || !strcmp(name, nn_optims[k].torch)) {
            *type = (enum nn_optim_type)k;
            return NN_OK;
        }
        names[k] = nn_optims[k].name;
    }
    return unknown_name("optimizer", "optimizer", name, names, NN_OPTIM_COUNT, err);
}

enum nn_status nn_sched_lookup(const char *name, enum nn_sched_type *type, struct nn_err *err)
{
    const char *names[NN_SCHED_COUNT];
    for (int k = 0; k < NN_SCHED_COUNT; k++) {
        if (!strcmp(name, nn_scheds[k].name) || !strcmp(name, nn_scheds[k].torch)) {
            *type = (enum nn_sched_type)k;
            return NN_OK;
        }
        names[k] = nn_scheds[k].name;
    }
    return unknown_name("lr_scheduler", "scheduler", name, names, NN_SCHED_COUNT, err);
}

/* Writes a row's defaults into the config struct at base; a required value is left
 * "missing" (NaN, LONG_MIN, a count of -1) for the check to name. */
static void set_defaults(void *base, const struct nn_hparam *ps, int n)
{
    for (int i = 0; i < n; i++) {
        char *f = (char *)base + ps[i].off;
        switch (ps[i].kind) {
        case NN_H_REAL: *(double *)f = ps[i].required ? NAN : ps[i].def[0]; break;
        case NN_H_INT: *(long *)f = ps[i].required ? LONG_MIN : (long)ps[i].def[0]; break;
        case NN_H_BOOL:
        case NN_H_CHOICE: *(int *)f = (int)ps[i].def[0]; break;
        case NN_H_PAIR:
            ((double *)f)[0] = ps[i].def[0];
            ((double *)f)[1] = ps[i].def[1];
            break;
        case NN_H_INTS: *(int *)((char *)base + ps[i].count_off) = ps[i].required ? -1 : 0; break;
        }
    }
}

/* The row's values present and finite: "what.name: required (torch's Name has no default)". */
static enum nn_status check_present(const void *base, const struct nn_hparam *ps, int n,
                                    const char *what, const char *torch, struct nn_err *err)
{
    for (int i = 0; i < n; i++) {
        const char *f = (const char *)base + ps[i].off;
        int missing = 0, bad = 0;
        switch (ps[i].kind) {
        case NN_H_REAL:
            missing = isnan(*(const double *)f);
            bad = !missing && !isfinite(*(const double *)f);
            break;
        case NN_H_INT: missing = *(const long *)f == LONG_MIN; break;
        case NN_H_PAIR:
            bad = !isfinite(((const double *)f)[0]) || !isfinite(((const double *)f)[1]);
            break;
        case NN_H_INTS: missing = *(const int *)((const char *)base + ps[i].count_off) < 0; break;
        case NN_H_BOOL:
        case NN_H_CHOICE: break;
        }
        if (missing)
            return nn_err_set(err, NN_EINVAL, "%s.%s: required (torch's %s has no default)", what,
                              ps[i].name, torch);
        if (bad)
            return nn_err_set(err, NN_EINVAL, "%s.%s: must be finite", what, ps[i].name);
    }
    return NN_OK;
}

/* ---- optimizers ------------------------------------------------------------------------ */
/* Per-step scalars, computed once per step, never per element. */
struct nn_optim_hyper {
    double lr;
    double step_size; /* Adam: lr / (1 - beta1^t) */
    double bc2_sqrt;  /* Adam: sqrt(1 - beta2^t) */
    int first;        /* SGD: the momentum buffer starts as the gradient */
    int decoupled;    /* AdamW */
};

/* param (n), grad (n), s[0..2] the parameter's state buffers (n each), all of the net's
 * dtype. Writes param and the state. */
typedef void nn_optim_kernel_fn(const struct nn_optim_cfg *c, const struct nn_optim_hyper *h,
                                void *param, const void *grad, void *const *s, size_t n);

static int nn_sgd_nbuf(const struct nn_optim_cfg *c) { return c->momentum != 0; }
static int nn_adam_nbuf(const struct nn_optim_cfg *c) { return 2 + (c->amsgrad != 0); }
static int nn_adamw_nbuf(const struct nn_optim_cfg *c) { return 2 + (c->amsgrad != 0); }

static enum nn_status nn_sgd_check(const struct nn_optim_cfg *c, struct nn_err *err)
{
    if (c->momentum < 0)
        return nn_err_set(err, NN_EINVAL, "optimizer.momentum: must be >= 0, got %g", c->momentum);
    if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        return nn_err_set(err, NN_EINVAL,
                          "optimizer.nesterov: Nesterov momentum requires a momentum > 0 and "
                          "dampening 0");
    return NN_OK;
}

static enum nn_status nn_adam_check(const struct nn_optim_cfg *c, struct nn_err *err)
{
    if (c->eps < 0)
        return nn_err_set(err, NN_EINVAL, "optimizer.eps: must be >= 0, got %g", c->eps);
    for (int k = 0; k < 2; k++)
        if (!(c->betas[k] >= 0 && c->betas[k] < 1))
            return nn_err_set(err, NN_EINVAL, "optimizer.betas[%d]: must be in [0, 1), got %g", k,
                              c->betas[k]);
    return NN_OK;
}
static enum nn_status nn_adamw_check(const struct nn_optim_cfg *c, struct nn_err *err)
{
    return nn_adam_check(c, err);
}

/* SGD (torch's _single_tensor_sgd): d = g + wd p; buf = d on the first step, else
 * momentum buf + (1 - dampening) d; d = nesterov ? d + momentum buf : buf; p -= lr d. */
#define SGD_KERNEL(T)                                                                         \
    static void nn_sgd_step_##T(const struct nn_optim_cfg *c, const struct nn_optim_hyper *h, \
                                void *param, const void *grad, void *const *s, size_t n)      \
    {                                                                                         \
        T *p = param, *buf = s[0]; /* (n), (n) or NULL without momentum */                    \
        const T *g = grad;         /* (n) */                                                  \
        double wd = c->weight_decay, mom = c->momentum, damp = 1 - c->dampening;              \
        double sign = c->maximize ? -1.0 : 1.0;                                               \
        for (size_t i = 0; i < n; i++) {                                                      \
            double pi = p[i], d = sign * (double)g[i];                                        \
            if (wd != 0)                                                                      \
                d += wd * pi;                                                                 \
            if (mom != 0) {                                                                   \
                T b = (T)(h->first ? d : mom * (double)buf[i] + damp * d);                    \
                buf[i] = b;                                                                   \
                d = c->nesterov ? d + mom * (double)b : (double)b;                            \
            }                                                                                 \
            p[i] = (T)(pi - h->lr * d);                                                       \
        }                                                                                     \
    }
SGD_KERNEL(float)
SGD_KERNEL(double)

/* Adam (torch's _single_tensor_adam), and AdamW (_single_tensor_adamw) when h->decoupled:
 * p *= 1 - lr wd first instead of g += wd p. The moments are read back as stored. */
#define ADAM_KERNEL(T)                                                                         \
    static void nn_adam_step_##T(const struct nn_optim_cfg *c, const struct nn_optim_hyper *h, \
                                 void *param, const void *grad, void *const *s, size_t n)      \
    {                                                                                          \
        T *p = param, *m = s[0], *v = s[1], *vmax = s[2]; /* (n) each; vmax with amsgrad */    \
        const T *g = grad;                                                                     \
        double b1 = c->betas[0], b2 = c->betas[1], wd = c->weight_decay;                       \
        double sign = c->maximize ? -1.0 : 1.0, keep = 1 - h->lr * wd;                         \
        for (size_t i = 0; i < n; i++) {                                                       \
            double pi = p[i], gi = sign * (double)g[i];                                        \
            if (h->decoupled)                                                                  \
                pi *= keep;                                                                    \
            else if (wd != 0)                                                                  \
                gi += wd * pi;                                                                 \
            T mi = (T)(b1 * (double)m[i] + (1 - b1) * gi);                                     \
            T vi = (T)(b2 * (double)v[i] + (1 - b2) * gi * gi);                                \
            m[i] = mi;                                                                         \
            v[i] = vi;                                                                         \
            if (vmax) {                                                                        \
                if (vi > vmax[i])                                                              \
                    vmax[i] = vi;                                                              \
                vi = vmax[i];                                                                  \
            }                                                                                  \
            double denom = sqrt((double)vi) / h->bc2_sqrt + c->eps;                            \
            p[i] = (T)(pi - h->step_size * (double)mi / denom);                                \
        }                                                                                      \
    }
ADAM_KERNEL(float)
ADAM_KERNEL(double)
#define nn_adamw_step_float nn_adam_step_float
#define nn_adamw_step_double nn_adam_step_double

struct nn_optim_ops {
    int (*nbuf)(const struct nn_optim_cfg *c);
    enum nn_status (*check)(const struct nn_optim_cfg *c, struct nn_err *err);
    nn_optim_kernel_fn *kernel[NN_DTYPE_COUNT];
    int decoupled;
};
#define NN_OPTIM_DECOUPLED_SGD 0
#define NN_OPTIM_DECOUPLED_ADAM 0
#define NN_OPTIM_DECOUPLED_ADAMW 1
#define NN_OPTIM_OPS_(X, ID, name, tn, prm)                                                       \
    [NN_OPTIM_##                                                                                  \
        ID] = {.nbuf = nn_##name##_nbuf,                                                          \
               .check = nn_##name##_check,                                                        \
               .kernel = {[NN_F32] = nn_##name##_step_float, [NN_F64] = nn_##name##_step_double}, \
               .decoupled = NN_OPTIM_DECOUPLED_##ID},
static const struct nn_optim_ops nn_optim_ops[NN_OPTIM_COUNT] = {NN_OPTIM_TABLE(NN_OPTIM_OPS_, _)};
#undef NN_OPTIM_OPS_

void nn_optim_defaults(struct nn_optim_cfg *c, enum nn_optim_type type)
{
    NN_ASSERT((int)type >= 0 && type < NN_OPTIM_COUNT);
    memset(c, 0, sizeof *c);
    c->type = type;
    set_defaults(c, nn_optims[type].params, nn_optims[type].nparams);
}

enum nn_status nn_optim_check(const struct nn_optim_cfg *c, struct nn_err *err)
{
    if ((int)c->type < 0 || c->type >= NN_OPTIM_COUNT)
        return nn_err_set(err, NN_EINVAL, "optimizer.type: unknown optimizer %d", (int)c->type);
    const struct nn_optim_info *oi = &nn_optims[c->type];
    enum nn_status st = check_present(c, oi->params, oi->nparams, "optimizer", oi->torch, err);
    if (st)
        return st;
    if (c->lr < 0)
        return nn_err_set(err, NN_EINVAL, "optimizer.lr: must be >= 0, got %g", c->lr);
    if (c->weight_decay < 0)
        return nn_err_set(err, NN_EINVAL, "optimizer.weight_decay: must be >= 0, got %g",
                          c->weight_decay);
    return nn_optim_ops[c->type].check(c, err);
}

static size_t param_elems(const struct nn_net *net)
{
    size_t n = 0;
    for (int i = 0; i < net->nlayers; i++)
        n += net->layers[i].weight.numel * (net->layers[i].weight.ndim != 0) +
             net->layers[i].bias.numel * (net->layers[i].bias.ndim != 0);
    return n;
}

size_t nn_optim_state_bytes(const struct nn_optim_cfg *c, const struct nn_net *net)
{
    size_t b;
    if (nn_mul_ovf(param_elems(net), nn_dtype_size(net->dtype), &b) ||
        nn_mul_ovf(b, (size_t)nn_optim_ops[c->type].nbuf(c), &b))
        return SIZE_MAX;
    return b;
}

enum nn_status nn_optim_init(struct nn_optim *o, const struct nn_optim_cfg *c,
                             const struct nn_net *net, struct nn_err *err)
{
    memset(o, 0, sizeof *o);
    enum nn_status st = nn_optim_check(c, err);
    if (st)
        return st;
    o->cfg = *c;
    o->dtype = net->dtype;
    o->nbuf = nn_optim_ops[c->type].nbuf(c);
    o->param_elems = param_elems(net);
    o->bytes = nn_optim_state_bytes(c, net);
    if (o->bytes == SIZE_MAX)
        return nn_err_set(err, NN_ETOOBIG, "optimizer: state size overflows");
    if (o->bytes && !(o->state = calloc(1, o->bytes)))
        return nn_err_set(err, NN_ENOMEM, "optimizer: out of memory for %zu bytes of state",
                          o->bytes);
    return NN_OK;
}

void nn_optim_free(struct nn_optim *o)
{
    if (!o)
        return;
    free(o->state);
    memset(o, 0, sizeof *o);
}

/* ---- the fused step (nn_optim_step_fused) ------------------------------------------------ */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NN_ADAM_AVX 1
/* Adam/AdamW on float32 without amsgrad, 4 elements at a time in AVX double lanes: the same
 * operations as ADAM_KERNEL(float) in the same order (the lanes are independent, so every
 * value is the scalar kernel's bit for bit; AVX without FMA, so nothing is contracted), with
 * the gradient's sum of squares (its own serial chain, in order, overlapping the update) and
 * the non-finite test of the new values folded in. Returns the sum; *bad |= 1 on inf/nan. */
__attribute__((target("avx"))) static double adam_f32_avx(const struct nn_optim_cfg *c,
                                                          const struct nn_optim_hyper *h, float *p,
                                                          const float *g, float *m, float *v,
                                                          size_t n, int *bad)
{
    const double b1 = c->betas[0], b2 = c->betas[1], wd = c->weight_decay;
    const __m256d vb1 = _mm256_set1_pd(b1), vc1 = _mm256_set1_pd(1 - b1);
    const __m256d vb2 = _mm256_set1_pd(b2), vc2 = _mm256_set1_pd(1 - b2);
    const __m256d vsign = _mm256_set1_pd(c->maximize ? -1.0 : 1.0);
    const __m256d vkeep = _mm256_set1_pd(1 - h->lr * wd), vwd = _mm256_set1_pd(wd);
    const __m256d vbc2 = _mm256_set1_pd(h->bc2_sqrt), veps = _mm256_set1_pd(c->eps);
    const __m256d vss = _mm256_set1_pd(h->step_size);
    const int mode = h->decoupled ? 1 : wd != 0 ? 2 : 0;
    __m128 nf = _mm_setzero_ps();
    double acc = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d gd = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
        __m256d sq = _mm256_mul_pd(gd, gd);
        __m128d s0 = _mm256_castpd256_pd128(sq), s1 = _mm256_extractf128_pd(sq, 1);
        acc += _mm_cvtsd_f64(s0);
        acc += _mm_cvtsd_f64(_mm_unpackhi_pd(s0, s0));
        acc += _mm_cvtsd_f64(s1);
        acc += _mm_cvtsd_f64(_mm_unpackhi_pd(s1, s1));
        __m256d pi = _mm256_cvtps_pd(_mm_loadu_ps(p + i));
        __m256d gi = _mm256_mul_pd(vsign, gd);
        if (mode == 1)
            pi = _mm256_mul_pd(pi, vkeep);
        else if (mode == 2)
            gi = _mm256_add_pd(gi, _mm256_mul_pd(vwd, pi));
        __m256d md = _mm256_cvtps_pd(_mm_loadu_ps(m + i));
        __m256d vd = _mm256_cvtps_pd(_mm_loadu_ps(v + i));
        __m128 mi = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(vb1, md), _mm256_mul_pd(vc1, gi)));
        __m128 vi = _mm256_cvtpd_ps(
            _mm256_add_pd(_mm256_mul_pd(vb2, vd), _mm256_mul_pd(_mm256_mul_pd(vc2, gi), gi)));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m256d denom =
            _mm256_add_pd(_mm256_div_pd(_mm256_sqrt_pd(_mm256_cvtps_pd(vi)), vbc2), veps);
        __m256d upd = _mm256_div_pd(_mm256_mul_pd(vss, _mm256_cvtps_pd(mi)), denom);
        __m128 pn = _mm256_cvtpd_ps(_mm256_sub_pd(pi, upd));
        _mm_storeu_ps(p + i, pn);
        __m128 z = _mm_sub_ps(pn, pn); /* nan exactly when pn is inf or nan */
        nf = _mm_or_ps(nf, _mm_cmpunord_ps(z, z));
    }
    *bad |= _mm_movemask_ps(nf) != 0;
    if (i < n) {
        for (size_t k = i; k < n; k++)
            acc += (double)g[k] * (double)g[k];
        void *s[3] = {m + i, v + i, NULL};
        nn_adam_step_float(c, h, p + i, g + i, s, n - i);
        *bad |= nn_has_nonfinite(NN_F32, p + i, n - i);
    }
    return acc;
}
#endif

/* optimizer.step(), and with sumsq the fused passes (optim.h). */
static int optim_step(struct nn_optim *o, struct nn_net *net, const struct nn_ws *ws, double lr,
                      double *sumsq)
{
    NN_ASSERT(net->dtype == o->dtype && ws->plan && ws->plan->backward);
    const struct nn_optim_cfg *c = &o->cfg;
    const struct nn_optim_ops *ops = &nn_optim_ops[c->type];
    o->step++;
    struct nn_optim_hyper h = {.lr = lr, .first = o->step == 1, .decoupled = ops->decoupled};
    if (c->type != NN_OPTIM_SGD) { /* Python floats: beta ** step, math.sqrt */
        double t = (double)o->step;
        h.step_size = lr / (1 - pow(c->betas[0], t));
        h.bc2_sqrt = sqrt(1 - pow(c->betas[1], t));
    }
    nn_optim_kernel_fn *kernel = ops->kernel[net->dtype];
    int fast = 0, bad = 0;
#ifdef NN_ADAM_AVX
    fast = sumsq && net->dtype == NN_F32 && c->type != NN_OPTIM_SGD && !c->amsgrad &&
           __builtin_cpu_supports("avx");
#endif
    size_t es = nn_dtype_size(net->dtype), off = 0;
    double total = 0;
    for (int i = 0; i < net->nlayers; i++) {
        struct nn_tensor *pt[2] = {&net->layers[i].weight, &net->layers[i].bias};
        const struct nn_tensor *gt[2] = {&ws->dweight[i], &ws->dbias[i]};
        for (int k = 0; k < 2; k++) {
            if (!pt[k]->ndim)
                continue;
            NN_ASSERT(gt[k]->data && gt[k]->numel == pt[k]->numel);
            void *s[3] = {NULL, NULL, NULL};
            for (int b = 0; b < o->nbuf; b++)
                s[b] = (char *)o->state + (b * o->param_elems + off) * es;
            if (fast) {
#ifdef NN_ADAM_AVX
                total +=
                    adam_f32_avx(c, &h, pt[k]->data, gt[k]->data, s[0], s[1], pt[k]->numel, &bad);
#endif
            } else {
                if (sumsq)
                    total += nn_sumsq(net->dtype, gt[k]->data, gt[k]->numel);
                kernel(c, &h, pt[k]->data, gt[k]->data, s, pt[k]->numel);
                if (sumsq)
                    bad |= nn_has_nonfinite(net->dtype, pt[k]->data, pt[k]->numel);
            }
            off += pt[k]->numel;
        }
    }
    NN_ASSERT(off == o->param_elems);
    if (sumsq)
        *sumsq = total;
    return bad;
}

void nn_optim_step(struct nn_optim *o, struct nn_net *net, const struct nn_ws *ws, double lr)
{
    optim_step(o, net, ws, lr, NULL);
}

int nn_optim_step_fused(struct nn_optim *o, struct nn_net *net, const struct nn_ws *ws, double lr,
                        double *sumsq)
{
    return optim_step(o, net, ws, lr, sumsq);
}

/* ---- schedulers ---------------------------------------------------------------------- */
/* The next rate from s (last_epoch already advanced), torch's get_lr(). */
typedef double nn_sched_lr_fn(const struct nn_sched *s, double metric);

static double nn_step_sched_lr(const struct nn_sched *s, double metric)
{
    (void)metric;
    if (s->last_epoch == 0 || s->last_epoch % s->cfg.step_size != 0)
        return s->lr;
    return s->lr * s->cfg.gamma;
}

static double nn_multistep_sched_lr(const struct nn_sched *s, double metric)
{
    (void)metric;
    int times = 0; /* a Counter: a milestone listed twice multiplies twice */
    for (int i = 0; i < s->cfg.nmilestones; i++)
        times += s->cfg.milestones[i] == s->last_epoch;
    return times ? s->lr * pow(s->cfg.gamma, (double)times) : s->lr;
}

static double nn_exponential_sched_lr(const struct nn_sched *s, double metric)
{
    (void)metric;
    return s->last_epoch == 0 ? s->lr : s->lr * s->cfg.gamma;
}

/* Python's % (the result takes the divisor's sign). */
static long py_mod(long a, long m)
{
    long r = a % m;
    return r < 0 ? r + m : r;
}

/* CosineAnnealingLR.get_lr, its operations in torch's order (the rates are bit for bit). */
static double nn_cosine_sched_lr(const struct nn_sched *s, double metric)
{
    (void)metric;
    const double pi = 3.141592653589793; /* math.pi */
    long e = s->last_epoch, T = s->cfg.T_max;
    double eta = s->cfg.eta_min;
    if (e == 0)
        return s->lr;
    if (py_mod(e - 1 - T, 2 * T) == 0)
        return s->lr + (s->base_lr - eta) * (1 - cos(pi / (double)T)) / 2;
    return (1 + cos(pi * (double)e / (double)T)) / (1 + cos(pi * (double)(e - 1) / (double)T)) *
               (s->lr - eta) +
           eta;
}

/* ReduceLROnPlateau._reduce_lr: max(lr * factor, min_lr), skipped when the change is within
 * eps. Called when plateau_update (the bookkeeping of its step(): is_better with the
 * threshold, patience, cooldown) says so. */
static double nn_reduce_on_plateau_sched_lr(const struct nn_sched *s, double metric)
{
    (void)metric;
    double old = s->lr, nw = fmax(old * s->cfg.factor, s->cfg.min_lr);
    return old - nw > s->cfg.eps ? nw : old;
}

static int plateau_better(const struct nn_sched *s, double a)
{
    const struct nn_sched_cfg *c = &s->cfg;
    if (c->mode == 0)
        return c->threshold_mode == 0 ? a < s->best * (1. - c->threshold)
                                      : a < s->best - c->threshold;
    return c->threshold_mode == 0 ? a > s->best * (c->threshold + 1.) : a > s->best + c->threshold;
}

/* The bookkeeping of ReduceLROnPlateau.step; 1 when the rate is to be reduced. */
static int plateau_update(struct nn_sched *s, double metric)
{
    if (plateau_better(s, metric)) {
        s->best = metric;
        s->num_bad_epochs = 0;
    } else {
        s->num_bad_epochs++;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->num_bad_epochs = 0; /* bad epochs in cooldown are ignored */
    }
    if (s->num_bad_epochs > s->cfg.patience) {
        s->cooldown_counter = s->cfg.cooldown;
        s->num_bad_epochs = 0;
        return 1;
    }
    return 0;
}

static enum nn_status nn_step_sched_check(const struct nn_sched_cfg *c, struct nn_err *err)
{
    if (c->step_size < 1)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.step_size: must be >= 1, got %ld",
                          c->step_size);
    return NN_OK;
}
static enum nn_status nn_multistep_sched_check(const struct nn_sched_cfg *c, struct nn_err *err)
{
    for (int i = 0; i < c->nmilestones; i++)
        if (c->milestones[i] < 0)
            return nn_err_set(err, NN_EINVAL, "lr_scheduler.milestones[%d]: must be >= 0, got %ld",
                              i, c->milestones[i]);
    return NN_OK;
}
static enum nn_status nn_exponential_sched_check(const struct nn_sched_cfg *c, struct nn_err *err)
{
    (void)c, (void)err;
    return NN_OK;
}
static enum nn_status nn_cosine_sched_check(const struct nn_sched_cfg *c, struct nn_err *err)
{
    if (c->T_max < 1)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.T_max: must be >= 1, got %ld", c->T_max);
    return NN_OK;
}
static enum nn_status nn_reduce_on_plateau_sched_check(const struct nn_sched_cfg *c,
                                                       struct nn_err *err)
{
    if (!(c->factor < 1.0))
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.factor: must be < 1, got %g", c->factor);
    if (c->patience < 0 || c->cooldown < 0)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.%s: must be >= 0, got %ld",
                          c->patience < 0 ? "patience" : "cooldown",
                          c->patience < 0 ? c->patience : c->cooldown);
    return NN_OK;
}

struct nn_sched_ops {
    nn_sched_lr_fn *lr;
    enum nn_status (*check)(const struct nn_sched_cfg *c, struct nn_err *err);
};
#define NN_SCHED_OPS_(X, ID, name, tn, met, prm) \
    [NN_SCHED_##ID] = {.lr = nn_##name##_sched_lr, .check = nn_##name##_sched_check},
static const struct nn_sched_ops nn_sched_ops[NN_SCHED_COUNT] = {NN_SCHED_TABLE(NN_SCHED_OPS_, _)};
#undef NN_SCHED_OPS_

void nn_sched_defaults(struct nn_sched_cfg *c, enum nn_sched_type type)
{
    NN_ASSERT((int)type >= 0 && type < NN_SCHED_COUNT);
    memset(c, 0, sizeof *c);
    c->type = type;
    set_defaults(c, nn_scheds[type].params, nn_scheds[type].nparams);
}

enum nn_status nn_sched_check(const struct nn_sched_cfg *c, struct nn_err *err)
{
    if ((int)c->type < 0 || c->type >= NN_SCHED_COUNT)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.type: unknown scheduler %d", (int)c->type);
    const struct nn_sched_info *si = &nn_scheds[c->type];
    enum nn_status st = check_present(c, si->params, si->nparams, "lr_scheduler", si->torch, err);
    if (st)
        return st;
    if (c->nmilestones > NN_SCHED_MAX_MILESTONES)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.milestones: at most %d",
                          NN_SCHED_MAX_MILESTONES);
    return nn_sched_ops[c->type].check(c, err);
}

void nn_sched_init(struct nn_sched *s, const struct nn_sched_cfg *c, double lr)
{
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    s->base_lr = s->lr = lr;
    s->last_epoch = 0;
    s->best = c->mode == 0 ? INFINITY : -INFINITY;
    /* the constructor's step: get_lr() at epoch 0, which keeps the rate but for a
     * MultiStepLR milestone at 0 (ReduceLROnPlateau takes no step) */
    if (!nn_scheds[c->type].metric)
        s->lr = nn_sched_ops[c->type].lr(s, 0);
}

void nn_sched_step(struct nn_sched *s, double metric)
{
    s->last_epoch++;
    if (s->cfg.type == NN_SCHED_PLATEAU && !plateau_update(s, metric))
        return;
    s->lr = nn_sched_ops[s->cfg.type].lr(s, metric);
}
