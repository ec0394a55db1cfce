/* relud core: optimizers and learning-rate schedulers, torch.optim 1.13's arithmetic.
 *
 * Two lists in the style of nn.h's layer and loss tables: NN_OPTIM_TABLE (SGD, Adam, AdamW)
 * and NN_SCHED_TABLE (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
 * ReduceLROnPlateau). Each row names its hyperparameters with torch's names and defaults;
 * the server's parser, the docs test and the error messages read those lists, so a new row
 * is one line plus its functions (a missing function is a compile error).
 *
 * Life of an optimizer (the trainer in core/train.h does this for you):
 *   struct nn_optim_cfg c; nn_optim_defaults(&c, NN_OPTIM_ADAM); c.lr = 0.01;
 *   nn_optim_check(&c, err);                       torch's ValueErrors
 *   nn_optim_init(&o, &c, net, err);               state buffers sized from net's parameters
 *   per step: forward, loss, nn_net_backward, clip, then nn_optim_step(&o, net, ws, lr);
 *   nn_optim_free(&o);
 * nn_optim_step writes the net's parameters in place: train a copy of a served model (whose
 * net is shared by requests and immutable).
 *
 * Numbers. Every element's update is computed in double from the stored values and rounded
 * once to the net's dtype; the state (momentum buffers, Adam's moments) is kept in the net's
 * dtype, as torch keeps it. Learning rates are doubles (torch's Python floats). */
#ifndef RELUD_OPTIM_H
#define RELUD_OPTIM_H

#include <stddef.h>

#include "core/nn.h"

/* ---- hyperparameters: what a row of either table lists ------------------------------ */
enum nn_hkind {
    NN_H_REAL,   /* a number -> double */
    NN_H_INT,    /* an integer -> long */
    NN_H_BOOL,   /* true | false -> int */
    NN_H_PAIR,   /* [a, b] -> double[2] (Adam's betas) */
    NN_H_CHOICE, /* one of choices (a string) -> int, its index */
    NN_H_INTS,   /* an array of integers -> long[NN_SCHED_MAX_MILESTONES] + a count */
};

struct nn_hparam {
    const char *name; /* torch's keyword */
    enum nn_hkind kind;
    size_t off;                 /* where the value goes in the config struct */
    size_t count_off;           /* NN_H_INTS: where its count (int) goes */
    int required;               /* torch has no default (SGD's lr, StepLR's step_size, ...) */
    double def[2];              /* the default (NN_H_PAIR: both; NN_H_CHOICE: the index) */
    const char *const *choices; /* NN_H_CHOICE: NULL-terminated */
};

#define NN_MAX_HPARAMS 8

/* Row helpers: S is the config struct, f its field (also the name torch gives it). */
#define NN_HP_REAL(S, f, d)                                       \
    {                                                             \
#f, NN_H_REAL, offsetof(struct S, f), 0, 0, {d, 0 }, NULL \
    }
#define NN_HP_REAL_REQ(S, f)                                      \
    {                                                             \
#f, NN_H_REAL, offsetof(struct S, f), 0, 1, {0, 0 }, NULL \
    }
#define NN_HP_INT(S, f, d)                                       \
    {                                                            \
#f, NN_H_INT, offsetof(struct S, f), 0, 0, {d, 0 }, NULL \
    }
#define NN_HP_INT_REQ(S, f)                                      \
    {                                                            \
#f, NN_H_INT, offsetof(struct S, f), 0, 1, {0, 0 }, NULL \
    }
#define NN_HP_BOOL(S, f, d)                                       \
    {                                                             \
#f, NN_H_BOOL, offsetof(struct S, f), 0, 0, {d, 0 }, NULL \
    }
#define NN_HP_PAIR(S, f, a, b)                                    \
    {                                                             \
#f, NN_H_PAIR, offsetof(struct S, f), 0, 0, {a, b }, NULL \
    }
#define NN_HP_CHOICE(S, f, d, list)                                 \
    {                                                               \
#f, NN_H_CHOICE, offsetof(struct S, f), 0, 0, {d, 0 }, list \
    }
#define NN_HP_INTS_REQ(S, f)                                                             \
    {                                                                                    \
#f, NN_H_INTS, offsetof(struct S, f), offsetof(struct S, n##f), 1, {0, 0 }, NULL \
    }

/* ---- optimizers: one list ------------------------------------------------------------
 * M(X, ID, name, TorchName, (hyperparameters...)): torch.optim's keywords and defaults
 * (maximize included; foreach, capturable, differentiable and fused are execution choices
 * torch makes that give the same numbers on a CPU, and are not accepted). */
struct nn_optim_cfg;
#define NN_OPT_REAL(f, d) NN_HP_REAL(nn_optim_cfg, f, d)
#define NN_OPTIM_TABLE(M, X)                                                                       \
    M(X, SGD, sgd, SGD,                                                                            \
      (NN_HP_REAL_REQ(nn_optim_cfg, lr), NN_OPT_REAL(momentum, 0), NN_OPT_REAL(dampening, 0),      \
       NN_OPT_REAL(weight_decay, 0), NN_HP_BOOL(nn_optim_cfg, nesterov, 0),                        \
       NN_HP_BOOL(nn_optim_cfg, maximize, 0)))                                                     \
    M(X, ADAM, adam, Adam,                                                                         \
      (NN_OPT_REAL(lr, 1e-3), NN_HP_PAIR(nn_optim_cfg, betas, 0.9, 0.999), NN_OPT_REAL(eps, 1e-8), \
       NN_OPT_REAL(weight_decay, 0), NN_HP_BOOL(nn_optim_cfg, amsgrad, 0),                         \
       NN_HP_BOOL(nn_optim_cfg, maximize, 0)))                                                     \
    M(X, ADAMW, adamw, AdamW,                                                                      \
      (NN_OPT_REAL(lr, 1e-3), NN_HP_PAIR(nn_optim_cfg, betas, 0.9, 0.999), NN_OPT_REAL(eps, 1e-8), \
       NN_OPT_REAL(weight_decay, 1e-2), NN_HP_BOOL(nn_optim_cfg, amsgrad, 0),                      \
       NN_HP_BOOL(nn_optim_cfg, maximize, 0)))

enum nn_optim_type {
#define NN_OPTIM_ENUM_(X, ID, name, torch, params) NN_OPTIM_##ID,
    NN_OPTIM_TABLE(NN_OPTIM_ENUM_, _)
#undef NN_OPTIM_ENUM_
        NN_OPTIM_COUNT
};

/* Every optimizer's hyperparameters in one struct: a row reads the fields it lists. */
struct nn_optim_cfg {
    enum nn_optim_type type;
    double lr;
    double momentum, dampening; /* SGD */
    double weight_decay;        /* SGD, Adam: added to the gradient; AdamW: decoupled */
    double betas[2], eps;       /* Adam, AdamW */
    int nesterov;               /* SGD */
    int amsgrad;                /* Adam, AdamW */
    int maximize;               /* every one: ascend instead of descend */
};

struct nn_optim_info {
    const char *name;  /* "adamw" */
    const char *torch; /* "AdamW" */
    int nparams;
    struct nn_hparam params[NN_MAX_HPARAMS];
};
extern const struct nn_optim_info nn_optims[NN_OPTIM_COUNT];

/* "adamw" or "AdamW"; on failure the message ("optimizer.type: unknown optimizer ...")
 * lists the valid names. */
enum nn_status nn_optim_lookup(const char *name, enum nn_optim_type *type, struct nn_err *err);
/* type and every default of its row (a required one is NaN until set). */
void nn_optim_defaults(struct nn_optim_cfg *c, enum nn_optim_type type);
/* torch's checks, its messages' substance, naming "optimizer.<field>": lr >= 0 (and given),
 * momentum >= 0, weight_decay >= 0, nesterov needs momentum > 0 and dampening 0, eps >= 0,
 * 0 <= betas < 1; every value finite. */
enum nn_status nn_optim_check(const struct nn_optim_cfg *c, struct nn_err *err);

struct nn_optim {
    struct nn_optim_cfg cfg;
    enum nn_dtype dtype;
    int nbuf;           /* state buffers per parameter: SGD 1 with momentum, Adam 2 (+1 amsgrad) */
    long step;          /* optimizer steps taken (Adam's state["step"]; SGD: 0 = no buffer yet) */
    size_t param_elems; /* every weight and bias of the net */
    size_t bytes;       /* the state block */
    void *state;        /* nbuf blocks of param_elems values (net dtype), zeroed; NULL if nbuf 0 */
};

/* Bytes of state nn_optim_init allocates for net. */
size_t nn_optim_state_bytes(const struct nn_optim_cfg *c, const struct nn_net *net);
/* Checks c (nn_optim_check) and allocates the state for net's parameters (layer by layer,
 * weight then bias). */
enum nn_status nn_optim_init(struct nn_optim *o, const struct nn_optim_cfg *c,
                             const struct nn_net *net, struct nn_err *err);
void nn_optim_free(struct nn_optim *o);
/* optimizer.step() at learning rate lr: every parameter of net updated in place from its
 * gradient in ws (ws->dweight[i], ws->dbias[i], after any clipping), in torch's formulas:
 *   SGD   g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
 *         g = nesterov ? g + momentum buf : buf; p -= lr g
 *   Adam  g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; [vmax = max(vmax, v)]
 *         p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW p *= 1 - lr wd first, then Adam without the wd term.
 * maximize negates g first. The net must be the one o was sized for. Never fails. */
void nn_optim_step(struct nn_optim *o, struct nn_net *net, const struct nn_ws *ws, double lr);
/* nn_optim_step fused with the two passes a step that does not clip makes around it (the
 * trainer's hot path): *sumsq gets the gradients' sum of squares as nn_clip_grad_norm sums
 * them (layer by layer, weight then bias, each tensor in order from 0 then added to the
 * total: sqrt(*sumsq) is its return bit for bit), read in the same pass as the update; and
 * returns 1 when a parameter became inf or nan (0 otherwise). The parameters and the state
 * are nn_optim_step's bit for bit. */
int nn_optim_step_fused(struct nn_optim *o, struct nn_net *net, const struct nn_ws *ws, double lr,
                        double *sumsq);

/* ---- learning-rate schedulers: one list ----------------------------------------------
 * M(X, ID, name, TorchName, metric, (hyperparameters...)), metric 1 when step() takes the
 * monitored value. Each follows torch 1.13's chainable
 * get_lr() (the form scheduler.step() uses), so the rates are torch's to the last bit:
 *   step         StepLR: lr * gamma when last_epoch % step_size == 0
 *   multistep    MultiStepLR: lr * gamma^(times last_epoch is a milestone)
 *   exponential  ExponentialLR: lr * gamma
 *   cosine       CosineAnnealingLR's recursion (restarting past T_max, as torch's does)
 *   reduce_on_plateau  ReduceLROnPlateau on a monitored value: rel/abs threshold, patience,
 *                cooldown, min_lr, and eps (a reduction smaller than eps is skipped). */
#define NN_SCHED_MAX_MILESTONES 64
extern const char *const nn_sched_modes[];           /* "min", "max" */
extern const char *const nn_sched_threshold_modes[]; /* "rel", "abs" */
struct nn_sched_cfg;
#define NN_SCH_REAL(f, d) NN_HP_REAL(nn_sched_cfg, f, d)
#define NN_SCH_INT(f, d) NN_HP_INT(nn_sched_cfg, f, d)
#define NN_SCHED_TABLE(M, X)                                                                       \
    M(X, STEP, step, StepLR, 0, (NN_HP_INT_REQ(nn_sched_cfg, step_size), NN_SCH_REAL(gamma, 0.1))) \
    M(X, MULTISTEP, multistep, MultiStepLR, 0,                                                     \
      (NN_HP_INTS_REQ(nn_sched_cfg, milestones), NN_SCH_REAL(gamma, 0.1)))                         \
    M(X, EXPONENTIAL, exponential, ExponentialLR, 0, (NN_HP_REAL_REQ(nn_sched_cfg, gamma)))        \
    M(X, COSINE, cosine, CosineAnnealingLR, 0,                                                     \
      (NN_HP_INT_REQ(nn_sched_cfg, T_max), NN_SCH_REAL(eta_min, 0)))                               \
    M(X, PLATEAU, reduce_on_plateau, ReduceLROnPlateau, 1,                                         \
      (NN_HP_CHOICE(nn_sched_cfg, mode, 0, nn_sched_modes), NN_SCH_REAL(factor, 0.1),              \
       NN_SCH_INT(patience, 10), NN_SCH_REAL(threshold, 1e-4),                                     \
       NN_HP_CHOICE(nn_sched_cfg, threshold_mode, 0, nn_sched_threshold_modes),                    \
       NN_SCH_INT(cooldown, 0), NN_SCH_REAL(min_lr, 0), NN_SCH_REAL(eps, 1e-8)))

enum nn_sched_type {
#define NN_SCHED_ENUM_(X, ID, name, torch, metric, params) NN_SCHED_##ID,
    NN_SCHED_TABLE(NN_SCHED_ENUM_, _)
#undef NN_SCHED_ENUM_
        NN_SCHED_COUNT
};

struct nn_sched_cfg {
    enum nn_sched_type type;
    long step_size;                           /* step */
    double gamma;                             /* step, multistep, exponential */
    long milestones[NN_SCHED_MAX_MILESTONES]; /* multistep (repeats count, as torch's Counter) */
    int nmilestones;
    long T_max;     /* cosine */
    double eta_min; /* cosine */
    int mode;       /* reduce_on_plateau: 0 min, 1 max */
    double factor, threshold, min_lr, eps;
    long patience, cooldown;
    int threshold_mode; /* 0 rel, 1 abs */
};

struct nn_sched_info {
    const char *name;
    const char *torch;
    int metric; /* step() takes the monitored value (ReduceLROnPlateau) */
    int nparams;
    struct nn_hparam params[NN_MAX_HPARAMS];
};
extern const struct nn_sched_info nn_scheds[NN_SCHED_COUNT];

enum nn_status nn_sched_lookup(const char *name, enum nn_sched_type *type, struct nn_err *err);
void nn_sched_defaults(struct nn_sched_cfg *c, enum nn_sched_type type);
/* Required values given, step_size and T_max >= 1, factor < 1, patience and cooldown >= 0,
 * every value finite; names "lr_scheduler.<field>". */
enum nn_status nn_sched_check(const struct nn_sched_cfg *c, struct nn_err *err);

struct nn_sched {
    struct nn_sched_cfg cfg;
    double base_lr, lr; /* initial_lr, and the rate the next optimizer step uses */
    long last_epoch;    /* scheduler steps taken */
    /* reduce_on_plateau */
    double best;
    long num_bad_epochs, cooldown_counter;
};

/* The constructor (its initial step): last_epoch 0, lr unchanged. */
void nn_sched_init(struct nn_sched *s, const struct nn_sched_cfg *c, double lr);
/* scheduler.step(), or scheduler.step(metric) for reduce_on_plateau (others ignore it). */
void nn_sched_step(struct nn_sched *s, double metric);

#endif
