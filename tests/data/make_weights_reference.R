# Reference numbers for weighted linear mixed models:
#   * lme4::lmer(..., weights = w)   (prior weights: residual variance sigma^2 / w_i)
#   * nlme::lme(..., weights = varIdent(form = ~ 1 | grp))   (per-level residual SDs)
#
# Run from the repository root:
#
#     Rscript tests/data/make_weights_reference.R
#
# Writes into tests/data/:
#   weights_reference.json
#   weights_sleepstudy.csv        sleepstudy + deterministic weight w = 1 + (Days %% 3)
#   weights_sim_crossed.csv       simulated crossed design with weights (set.seed)
#   weights_sim_nested.csv        simulated nested design with weights (set.seed)
#   Orthodont.csv                 nlme::Orthodont
#   varident_sim.csv              simulated 3-level grp + random intercept (set.seed)
#
# Requires lme4, nlme, jsonlite. Takes a few seconds.

source(file.path("tests", "data", "reference_common.R"))
suppressPackageStartupMessages(library(nlme))

## ---------------------------------------------------------------------------
## Data
## ---------------------------------------------------------------------------

ss <- lme4::sleepstudy
ss$w <- 1 + (ss$Days %% 3)

# Crossed: 15 levels of a x 10 levels of b, 2 replicates, 20% of rows dropped
# (unbalanced), a covariate x and positive weights with 2 decimals.
set.seed(20240611)
cr <- expand.grid(rep = 1:2, b = sprintf("b%02d", 1:10), a = sprintf("a%02d", 1:15),
                  stringsAsFactors = FALSE)[, c("a", "b", "rep")]
cr <- cr[sort(sample(nrow(cr), round(0.8 * nrow(cr)))), ]
cr$x <- round(rnorm(nrow(cr)), 3)
cr$w <- round(runif(nrow(cr), 0.3, 3), 2)
ua <- rnorm(15, sd = 1.0); names(ua) <- sprintf("a%02d", 1:15)
ub <- rnorm(10, sd = 0.7); names(ub) <- sprintf("b%02d", 1:10)
cr$y <- round(2 + 0.5 * cr$x + ua[cr$a] + ub[cr$b] +
                rnorm(nrow(cr), sd = 0.8) / sqrt(cr$w), 4)
rownames(cr) <- NULL
cr$a <- factor(cr$a); cr$b <- factor(cr$b)

# Nested: 12 sites, 3-5 plots per site, 2-6 observations per plot.
set.seed(20240612)
ne <- do.call(rbind, lapply(1:12, function(s) {
  npl <- sample(3:5, 1)
  do.call(rbind, lapply(seq_len(npl), function(p) {
    nob <- sample(2:6, 1)
    data.frame(site = sprintf("s%02d", s), plot = sprintf("p%d", p),
               stringsAsFactors = FALSE)[rep(1, nob), ]
  }))
}))
rownames(ne) <- NULL
ne$x <- round(runif(nrow(ne), 0, 10), 2)
ne$w <- sample(c(0.5, 1, 2, 4), nrow(ne), replace = TRUE)
us <- rnorm(12, sd = 1.5); names(us) <- sprintf("s%02d", 1:12)
sp <- paste(ne$site, ne$plot, sep = ":")
up <- rnorm(length(unique(sp)), sd = 0.8); names(up) <- unique(sp)
ne$y <- round(10 - 0.3 * ne$x + us[ne$site] + up[sp] +
                rnorm(nrow(ne), sd = 1.2) / sqrt(ne$w), 4)
ne$site <- factor(ne$site); ne$plot <- factor(ne$plot)

orth <- as.data.frame(nlme::Orthodont)
orth$Subject <- factor(as.character(orth$Subject),
                       levels = levels(factor(as.character(orth$Subject))))
# (nlme's Orthodont Subject is an ordered factor sorted by response; make it a
# plain factor in alphabetical order so level order is unambiguous.)
orth$Sex <- factor(as.character(orth$Sex), levels = c("Male", "Female"))

# varIdent simulation: 25 subjects, 9 observations each, grp g1/g2/g3 varying
# within subject; residual SDs 1.0, 2.0, 0.5.
set.seed(20240613)
vs <- expand.grid(obs = 1:9, subject = sprintf("S%02d", 1:25), stringsAsFactors = FALSE)
vs <- vs[, c("subject", "obs")]
vs$grp <- sample(c("g1", "g2", "g3"), nrow(vs), replace = TRUE)
vs$x <- round(rnorm(nrow(vs), 5, 2), 3)
usub <- rnorm(25, sd = 1.5); names(usub) <- sprintf("S%02d", 1:25)
sd_grp <- c(g1 = 1.0, g2 = 2.0, g3 = 0.5)
vs$y <- round(3 + 0.8 * vs$x + usub[vs$subject] + rnorm(nrow(vs), sd = sd_grp[vs$grp]), 4)
vs$subject <- factor(vs$subject)
vs$grp <- factor(vs$grp)
vs$obs <- NULL

write_csv_labels(ss, "weights_sleepstudy.csv")
write_csv_labels(cr, "weights_sim_crossed.csv")
write_csv_labels(ne, "weights_sim_nested.csv")
write_csv_labels(orth, "Orthodont.csv")
write_csv_labels(vs, "varident_sim.csv")

## ---------------------------------------------------------------------------
## Dense Gaussian log-likelihood (a convention check, n small here):
##   y ~ N(X beta, V),  ML:   -1/2 [ n log(2 pi) + log|V| + r' V^-1 r ]
##   REML (lme4 convention, no log|X'X| term):
##        -1/2 [ (n-p) log(2 pi) + log|V| + log|X' V^-1 X| + r' V^-1 r ]
## with r = y - X beta_hat(V) (the GLS estimate for that V).
## ---------------------------------------------------------------------------

dense_loglik <- function(y, X, V, reml) {
  n <- length(y); p <- ncol(X)
  R <- chol(V)
  Xt <- backsolve(R, X, transpose = TRUE)
  yt <- backsolve(R, y, transpose = TRUE)
  XtX <- crossprod(Xt)
  beta <- solve(XtX, crossprod(Xt, yt))
  rt <- yt - Xt %*% beta
  ldV <- 2 * sum(log(diag(R)))
  if (reml) {
    -0.5 * ((n - p) * log(2 * pi) + ldV + as.numeric(determinant(XtX)$modulus) + sum(rt^2))
  } else {
    -0.5 * (n * log(2 * pi) + ldV + sum(rt^2))
  }
}

dense_loglik_merMod <- function(fit) {
  Z <- as.matrix(getME(fit, "Z"))
  L <- as.matrix(getME(fit, "Lambda"))
  w <- weights(fit)
  s2 <- sigma(fit)^2
  V <- s2 * (Z %*% L %*% t(L) %*% t(Z) + diag(1 / w, length(w)))
  dense_loglik(getME(fit, "y"), as.matrix(getME(fit, "X")), V, isREML(fit))
}

## ---------------------------------------------------------------------------
## lmer with prior weights
## ---------------------------------------------------------------------------

lmer_models <- list(
  sleepstudy_corr_w = list(formula = "Reaction ~ 1 + Days + (1 + Days | Subject)",
                           data = "weights_sleepstudy", df = ss),
  sleepstudy_int_w  = list(formula = "Reaction ~ 1 + Days + (1 | Subject)",
                           data = "weights_sleepstudy", df = ss),
  sim_crossed_w     = list(formula = "y ~ 1 + x + (1 | a) + (1 | b)",
                           data = "weights_sim_crossed", df = cr),
  sim_nested_w      = list(formula = "y ~ 1 + x + (1 | site/plot)",
                           data = "weights_sim_nested", df = ne)
)

lmer_results <- list()
for (key in names(lmer_models)) {
  spec <- lmer_models[[key]]
  dat <- spec$df
  lmer_results[[key]] <- list()
  for (reml in c(TRUE, FALSE)) {
    meth <- if (reml) "REML" else "ML"
    label <- paste(key, meth)
    message("fitting ", label)
    fit <- fit_strict(lmer(as.formula(spec$formula), data = dat, weights = w,
                           REML = reml, control = lmer_ctrl), label)
    conv <- check_merMod(fit, label)
    s <- merMod_summary(fit)
    ll_dense <- dense_loglik_merMod(fit)
    if (abs(ll_dense - s$logLik) > 1e-6) {
      stop(sprintf("%s: dense logLik %.10f != lme4 %.10f", label, ll_dense, s$logLik))
    }
    # the same model unweighted, to show the weights matter
    fit_unw <- fit_strict(lmer(as.formula(spec$formula), data = dat, REML = reml,
                               control = lmer_ctrl), paste(label, "unweighted"))
    sens <- refit_sensitivity(fit, function(f) list(
      logLik = as.numeric(logLik(f)), fixef = fixef(f),
      fixef_se = sqrt(diag(as.matrix(vcov(f)))), theta = getME(f, "theta"),
      sigma = sigma(f), vcov = as.data.frame(VarCorr(f))$vcov))
    print(signif(summarise_sensitivity(sens), 2))
    lmer_results[[key]][[meth]] <- c(
      list(formula = spec$formula, weights = "w", data = paste0(spec$data, ".csv")),
      s,
      list(REMLcrit = if (reml) REMLcrit(fit) else NULL,
           deviance = if (reml) NULL else deviance(fit),
           sum_log_w = sum(log(dat$w)),
           logLik_dense_check = ll_dense,
           unweighted = list(logLik = as.numeric(logLik(fit_unw)),
                             fixef = as.list(fixef(fit_unw)),
                             sigma = sigma(fit_unw)),
           convergence = conv,
           optimizer_sensitivity = sens))
    message(sprintf("   logLik %.8f (dense %.8f)  sigma %.6f", s$logLik, ll_dense, s$sigma))
  }
}

## ---------------------------------------------------------------------------
## nlme::lme with varIdent
## ---------------------------------------------------------------------------

# Primary: optim BFGS (it reaches the optimum found by maximising the dense
# likelihood directly; nlminb stops ~1e-8 short in logLik on varident_sim REML).
lme_ctrl <- lmeControl(maxIter = 1000, msMaxIter = 1000, niterEM = 100,
                       tolerance = 1e-12, msTol = 1e-14, opt = "optim",
                       optimMethod = "BFGS", returnObject = FALSE)
lme_ctrl_alt <- lmeControl(maxIter = 1000, msMaxIter = 1000, niterEM = 100, msMaxEval = 5000,
                           tolerance = 1e-12, msTol = 1e-14, opt = "nlminb",
                           returnObject = FALSE)

# random-intercept variance at full precision (VarCorr.lme returns formatted
# strings): the 1 x 1 relative pdMat times sigma^2
lme_ranef_var <- function(fit) {
  m <- nlme::pdMatrix(fit$modelStruct$reStruct)[[1]]
  stopifnot(all(dim(m) == 1))
  as.numeric(m) * fit$sigma^2
}

lme_summary <- function(fit, grp_var = NULL) {
  fe <- fixef(fit)
  V <- vcov(fit)
  re_sd <- sqrt(lme_ranef_var(fit))
  res <- list(
    nobs     = fit$dims$N,
    REML     = fit$method == "REML",
    method   = fit$method,
    logLik   = as.numeric(logLik(fit)),
    fixef    = as.list(fe),
    fixef_se = as.list(setNames(sqrt(diag(V)), names(fe))),
    random_intercept_sd = re_sd,
    sigma    = fit$sigma
  )
  if (!is.null(grp_var)) {
    vf <- fit$modelStruct$varStruct
    ratios <- coef(vf, unconstrained = FALSE, allCoef = TRUE)
    res$varIdent <- list(
      form = paste0("~ 1 | ", grp_var),
      reference_level = names(ratios)[ratios == 1][1],
      level_order = as.list(names(ratios)),
      ratios = as.list(ratios),
      residual_sd = as.list(fit$sigma * ratios),
      residual_var = as.list((fit$sigma * ratios)^2))
  }
  res
}

dense_loglik_lme_varident <- function(fit, dat, yname, Xform, subj, grp_var) {
  X <- model.matrix(Xform, dat)
  Z <- model.matrix(~ 0 + dat[[subj]])
  s2b <- lme_ranef_var(fit)
  ratios <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  sd_i <- fit$sigma * ratios[as.character(dat[[grp_var]])]
  V <- s2b * tcrossprod(Z) + diag(sd_i^2)
  dense_loglik(dat[[yname]], X, V, fit$method == "REML")
}

# Independent check of the nlme optimum: maximise the dense likelihood over
# (log sd_b, log sd per grp level), fixed effects by GLS, starting from nlme.
dense_optimum_varident <- function(fit, dat, yname, Xform, subj, grp_var) {
  X <- model.matrix(Xform, dat)
  Z <- model.matrix(~ 0 + dat[[subj]])
  ZZ <- tcrossprod(Z)
  y <- dat[[yname]]
  reml <- fit$method == "REML"
  ratios <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  gi <- match(as.character(dat[[grp_var]]), names(ratios))
  sdb <- sqrt(lme_ranef_var(fit))
  f <- function(p) {
    sd <- exp(p[-1])
    -dense_loglik(y, X, exp(2 * p[1]) * ZZ + diag(sd[gi]^2), reml)
  }
  p0 <- log(c(sdb, fit$sigma * ratios))
  o1 <- optim(p0, f, method = "BFGS", control = list(reltol = 1e-15, maxit = 1000))
  o2 <- optim(o1$par, f, method = "Nelder-Mead", control = list(reltol = 1e-15, maxit = 5000))
  o3 <- nlminb(o2$par, f, control = list(rel.tol = 1e-15, x.tol = 1e-12,
                                         eval.max = 5000, iter.max = 5000))
  sd <- exp(o3$par[-1])
  list(logLik = -o3$objective,
       random_intercept_sd = exp(o3$par[1]),
       residual_sd = as.list(setNames(sd, names(ratios))))
}

lme_models <- list(
  orthodont_varident = list(fixed = distance ~ age, random = ~ 1 | Subject,
                            grp = "Sex", subj = "Subject", y = "distance",
                            data = "Orthodont", df = orth,
                            lmer_formula = "distance ~ age + (1 | Subject)"),
  sim_varident       = list(fixed = y ~ x, random = ~ 1 | subject,
                            grp = "grp", subj = "subject", y = "y",
                            data = "varident_sim", df = vs,
                            lmer_formula = "y ~ x + (1 | subject)")
)

lme_results <- list()
for (key in names(lme_models)) {
  spec <- lme_models[[key]]
  dat <- spec$df
  lme_results[[key]] <- list()
  for (meth in c("REML", "ML")) {
    label <- paste(key, meth)
    message("fitting ", label)
    wform <- as.formula(paste0("~ 1 | ", spec$grp))
    fit <- fit_strict(lme(spec$fixed, random = spec$random, data = dat, method = meth,
                          weights = varIdent(form = wform), control = lme_ctrl), label)
    fit_alt <- fit_strict(lme(spec$fixed, random = spec$random, data = dat, method = meth,
                              weights = varIdent(form = wform), control = lme_ctrl_alt),
                          paste(label, "optim"))
    # the same model without varIdent, in nlme and in lme4
    fit0 <- fit_strict(lme(spec$fixed, random = spec$random, data = dat, method = meth,
                           control = lme_ctrl), paste(label, "no varIdent"))
    fit0_lmer <- fit_strict(lmer(as.formula(spec$lmer_formula), data = dat,
                                 REML = (meth == "REML"), control = lmer_ctrl),
                            paste(label, "lmer"))
    check_merMod(fit0_lmer, paste(label, "lmer"))

    s <- lme_summary(fit, spec$grp)
    s_alt <- lme_summary(fit_alt, spec$grp)
    ll_dense <- dense_loglik_lme_varident(fit, dat, spec$y, spec$fixed[-2],
                                          spec$subj, spec$grp)
    X <- model.matrix(spec$fixed[-2], dat)
    half_logdet_XtX <- 0.5 * as.numeric(determinant(crossprod(X))$modulus)
    pick <- function(s) c(logLik = s$logLik, unlist(s$fixef), unlist(s$fixef_se),
                          re = s$random_intercept_sd, sigma = s$sigma,
                          unlist(s$varIdent$ratios))
    dopt <- dense_optimum_varident(fit, dat, spec$y, spec$fixed[-2], spec$subj, spec$grp)
    if (dopt$logLik - s$logLik > 1e-9) {
      stop(sprintf("%s: nlme optimum %.12f is below the dense optimum %.12f", label,
                   s$logLik, dopt$logLik))
    }
    sens <- list(
      nlminb = c(compare_numbers(pick(s), pick(s_alt)),
                 list(logLik_minus_primary = s_alt$logLik - s$logLik)),
      dense_optimum = c(dopt,
        list(logLik_minus_primary = dopt$logLik - s$logLik),
        compare_numbers(c(s$random_intercept_sd, unlist(s$varIdent$residual_sd)),
                        c(dopt$random_intercept_sd, unlist(dopt$residual_sd)))))
    s0 <- lme_summary(fit0)
    lme_results[[key]][[meth]] <- c(
      list(fixed = deparse(spec$fixed), random = deparse(spec$random),
           weights = paste0("varIdent(form = ~ 1 | ", spec$grp, ")"),
           data = paste0(spec$data, ".csv")),
      s,
      list(
        logLik_dense_check = ll_dense,
        half_logdet_XtX = half_logdet_XtX,
        without_varIdent = list(
          nlme = s0,
          lme4 = c(list(formula = spec$lmer_formula), merMod_summary(fit0_lmer)),
          logLik_nlme_minus_lme4 = s0$logLik - as.numeric(logLik(fit0_lmer))),
        optimizer_sensitivity = sens))
    message(sprintf("   logLik %.8f (dense lme4-convention %.8f, 0.5 log|X'X| %.6f)",
                    s$logLik, ll_dense, half_logdet_XtX))
    message(sprintf("   no varIdent: nlme %.10f  lme4 %.10f", s0$logLik,
                    as.numeric(logLik(fit0_lmer))))
    message(sprintf(paste("   ratios %s; nlminb: max rel diff %.2g, logLik diff %.2g;",
                          "dense optimum: SD max rel diff %.2g, logLik diff %.2g"),
                    paste(sprintf("%.6f", unlist(s$varIdent$ratios)), collapse = " "),
                    sens$nlminb$max_rel_diff, sens$nlminb$logLik_minus_primary,
                    sens$dense_optimum$max_rel_diff, sens$dense_optimum$logLik_minus_primary))
  }
}

out <- list(
  meta = r_meta("tests/data/make_weights_reference.R", extra_pkgs = "nlme",
                lmer_control = lmer_ctrl_text,
                lme_control = paste("lmeControl(maxIter=1000, msMaxIter=1000, niterEM=100,",
                                    "tolerance=1e-12, msTol=1e-14, opt='optim', optimMethod='BFGS')"),
                seeds = list(weights_sim_crossed = 20240611, weights_sim_nested = 20240612,
                             varident_sim = 20240613),
                notes = "See tests/data/README.md, section 'weights_reference.json'."),
  factor_levels = list(
    weights_sleepstudy = factor_levels_of(ss),
    weights_sim_crossed = factor_levels_of(cr),
    weights_sim_nested = factor_levels_of(ne),
    Orthodont = factor_levels_of(orth),
    varident_sim = factor_levels_of(vs)),
  lmer_weights = lmer_results,
  lme_varIdent = lme_results
)

write_reference_json(out, "weights_reference.json")
