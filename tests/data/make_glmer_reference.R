# Reference numbers for generalized linear mixed models: lme4::glmer, ML by
# the Laplace approximation (nAGQ = 1) and adaptive Gauss-Hermite quadrature
# (nAGQ = 25, single scalar random-effect term only).
#
# Run from the repository root:
#
#     Rscript tests/data/make_glmer_reference.R
#
# Writes into tests/data/:
#   glmer_reference.json
#   cbpp.csv                 lme4::cbpp
#   grouseticks.csv          lme4::grouseticks
#   glmer_sim_binary.csv     simulated 0/1 response, crossed subject x item (set.seed)
#   glmer_sim_pois_offset.csv simulated counts, one grouping factor, offset log(t)
#   glmer_sim_pois_crossed.csv simulated counts, two crossed factors
#
# Requires lme4, jsonlite. Takes about 10-20 s.

source(file.path("tests", "data", "reference_common.R"))

glmer_ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                           optCtrl = list(maxfun = 1e5, rhoend = 1e-12),
                           check.conv.grad = .makeCC("warning", tol = 2e-3, relTol = NULL))
glmer_ctrl_text <- paste("glmerControl(optimizer='bobyqa' (both stages), tolPwrss=1e-10,",
                         "optCtrl=list(maxfun=1e5, rhoend=1e-12))")

## ---------------------------------------------------------------------------
## Data
## ---------------------------------------------------------------------------

cbpp <- lme4::cbpp
grouse <- lme4::grouseticks[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR",
                                "LOCATION", "cHEIGHT")]

# Binary, crossed: 40 subjects x 25 items, each pair observed with prob 0.6.
set.seed(20240621)
sb <- expand.grid(item = sprintf("i%02d", 1:25), subject = sprintf("s%02d", 1:40),
                  stringsAsFactors = FALSE)[, c("subject", "item")]
sb <- sb[runif(nrow(sb)) < 0.6, ]
rownames(sb) <- NULL
sb$x <- round(rnorm(nrow(sb)), 3)
u_s <- rnorm(40, sd = 0.9); names(u_s) <- sprintf("s%02d", 1:40)
u_i <- rnorm(25, sd = 0.6); names(u_i) <- sprintf("i%02d", 1:25)
eta <- -0.3 + 0.8 * sb$x + u_s[sb$subject] + u_i[sb$item]
sb$y <- rbinom(nrow(sb), 1, plogis(eta))
sb$subject <- factor(sb$subject); sb$item <- factor(sb$item)

# Poisson with offset: 30 groups, 4-12 observations each, exposure t.
set.seed(20240622)
ng <- 30
po <- data.frame(g = rep(sprintf("g%02d", 1:ng), times = sample(4:12, ng, replace = TRUE)),
                 stringsAsFactors = FALSE)
po$x <- round(runif(nrow(po), -1, 1), 3)
po$t <- round(runif(nrow(po), 0.5, 10), 2)
u_g <- rnorm(ng, sd = 0.5); names(u_g) <- sprintf("g%02d", 1:ng)
po$y <- rpois(nrow(po), po$t * exp(-0.5 + 0.4 * po$x + u_g[po$g]))
po$g <- factor(po$g)

# Poisson, crossed: 20 levels of a x 12 levels of b, 1-2 replicates.
set.seed(20240623)
pc <- expand.grid(b = sprintf("b%02d", 1:12), a = sprintf("a%02d", 1:20),
                  stringsAsFactors = FALSE)[, c("a", "b")]
pc <- pc[rep(seq_len(nrow(pc)), sample(1:2, nrow(pc), replace = TRUE)), ]
rownames(pc) <- NULL
pc$x <- round(rnorm(nrow(pc)), 3)
u_a <- rnorm(20, sd = 0.4); names(u_a) <- sprintf("a%02d", 1:20)
u_b <- rnorm(12, sd = 0.3); names(u_b) <- sprintf("b%02d", 1:12)
pc$y <- rpois(nrow(pc), exp(1 + 0.3 * pc$x + u_a[pc$a] + u_b[pc$b]))
pc$a <- factor(pc$a); pc$b <- factor(pc$b)

datasets <- list(cbpp = cbpp, grouseticks = grouse, glmer_sim_binary = sb,
                 glmer_sim_pois_offset = po, glmer_sim_pois_crossed = pc)
for (nm in names(datasets)) write_csv_labels(datasets[[nm]], paste0(nm, ".csv"))

## ---------------------------------------------------------------------------
## Models
## ---------------------------------------------------------------------------

models <- list(
  cbpp_binomial = list(
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    family = "binomial", data = "cbpp", weights = NULL, agq = TRUE),
  cbpp_binomial_prop = list(
    formula = "incidence / size ~ period + (1 | herd)",
    family = "binomial", data = "cbpp", weights = "size", agq = FALSE),
  sim_binary_crossed = list(
    formula = "y ~ 1 + x + (1 | subject) + (1 | item)",
    family = "binomial", data = "glmer_sim_binary", weights = NULL, agq = FALSE),
  sim_pois_offset = list(
    formula = "y ~ 1 + x + (1 | g) + offset(log(t))",
    family = "poisson", data = "glmer_sim_pois_offset", weights = NULL, agq = TRUE),
  sim_pois_crossed = list(
    formula = "y ~ 1 + x + (1 | a) + (1 | b)",
    family = "poisson", data = "glmer_sim_pois_crossed", weights = NULL, agq = FALSE),
  grouseticks = list(
    formula = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)",
    family = "poisson", data = "grouseticks", weights = NULL, agq = FALSE)
)

glmer_extract <- function(f) list(
  logLik = as.numeric(logLik(f)), fixef = fixef(f),
  fixef_se = sqrt(diag(as.matrix(vcov(f)))), theta = getME(f, "theta"),
  ranef = unlist(ranef(f)))

fit_glmer <- function(spec, nAGQ, label, control = glmer_ctrl) {
  dat <- datasets[[spec$data]]
  fam <- get(spec$family)()
  if (is.null(spec$weights)) {
    fit_strict(glmer(as.formula(spec$formula), data = dat, family = fam,
                     nAGQ = nAGQ, control = control), label)
  } else {
    dat$.w <- dat[[spec$weights]]
    fit_strict(glmer(as.formula(spec$formula), data = dat, family = fam,
                     weights = .w, nAGQ = nAGQ, control = control), label)
  }
}

# refit without the strict handlers (for the optimizer comparison only)
glmer_refit <- function(spec, nAGQ, control) {
  dat <- datasets[[spec$data]]
  fam <- get(spec$family)()
  if (is.null(spec$weights)) {
    glmer(as.formula(spec$formula), data = dat, family = fam, nAGQ = nAGQ, control = control)
  } else {
    dat$.w <- dat[[spec$weights]]
    glmer(as.formula(spec$formula), data = dat, family = fam, weights = .w,
          nAGQ = nAGQ, control = control)
  }
}

glmm_entry <- function(fit, spec, nAGQ, label, full = TRUE) {
  conv <- check_merMod(fit, label)
  s <- merMod_summary(fit)
  s$varcorr <- lapply(s$varcorr, function(e) e[c("grp", "var1", "var2", "vcov", "sdcor")])
  res <- c(
    list(formula = spec$formula, family = spec$family,
         link = family(fit)$link, data = paste0(spec$data, ".csv"),
         weights = spec$weights, nAGQ = nAGQ),
    s,
    list(minus2logLik = -2 * s$logLik,
         deviance = deviance(fit),
         devcomp_dev = as.numeric(fit@devcomp$cmp[["dev"]]),
         AIC = AIC(fit), BIC = BIC(fit)))
  # lme4's logLik for nAGQ > 1 leaves out the saturated-model log-likelihood
  # (its deviance-residual form), the Laplace logLik includes it. Give both.
  rsp <- fit@resp
  sat <- -0.5 * rsp$family$aic(rsp$y, rsp$n, rsp$y, rsp$weights, 0)
  cmp <- fit@devcomp$cmp
  res$logLik_saturated <- sat
  res$logLik_full_scale <- if (nAGQ > 1) s$logLik + sat else s$logLik
  res$logLik_relative_to_saturated <- if (nAGQ > 1) s$logLik else s$logLik - sat
  res$devcomp <- as.list(cmp[c("ldL2", "ussq", "drsum", "dev")])
  if (nAGQ == 1) {
    chk <- -0.5 * (cmp[["drsum"]] + cmp[["ldL2"]] + cmp[["ussq"]]) + sat
    if (abs(chk - s$logLik) > 1e-6) stop(label, ": Laplace logLik decomposition fails")
  }
  if (full) res$ranef <- ranef_entries(fit)
  res$convergence <- conv
  res
}

results <- list()
fits <- list()
for (key in names(models)) {
  spec <- models[[key]]
  message("fitting ", key, " (Laplace)")
  fit <- fit_glmer(spec, 1L, key)
  fits[[key]] <- fit
  ent <- glmm_entry(fit, spec, 1L, key)
  sens <- refit_sensitivity(fit, glmer_extract,
                            refit = function(ctl) glmer_refit(spec, 1L, ctl))
  print(signif(summarise_sensitivity(sens), 2))
  ent$optimizer_sensitivity <- sens
  message(sprintf("   logLik %.8f  theta %s", ent$logLik,
                  paste(sprintf("%.6f", unlist(ent$theta)), collapse = " ")))
  results[[key]] <- list(Laplace = ent)

  if (spec$agq) {
    message("fitting ", key, " (nAGQ = 25)")
    fit25 <- fit_glmer(spec, 25L, paste(key, "nAGQ=25"))
    ent25 <- glmm_entry(fit25, spec, 25L, paste(key, "nAGQ=25"), full = FALSE)
    sens25 <- refit_sensitivity(fit25, function(f) list(
      logLik = as.numeric(logLik(f)), fixef = fixef(f), theta = getME(f, "theta")),
      refit = function(ctl) glmer_refit(spec, 25L, ctl))
    print(signif(summarise_sensitivity(sens25), 2))
    ent25$optimizer_sensitivity <- sens25
    message(sprintf("   logLik %.8f (full scale %.8f; Laplace %.8f)  theta %.6f",
                    ent25$logLik, ent25$logLik_full_scale, ent$logLik, unlist(ent25$theta)))
    results[[key]]$AGQ25 <- ent25
  }
}

# cbind(successes, failures) and proportion + weights = size are the same model
d_ll <- abs(results$cbpp_binomial$Laplace$logLik - results$cbpp_binomial_prop$Laplace$logLik)
d_fe <- max(abs(unlist(results$cbpp_binomial$Laplace$fixef) -
                unlist(results$cbpp_binomial_prop$Laplace$fixef)))
d_th <- max(abs(unlist(results$cbpp_binomial$Laplace$theta) -
                unlist(results$cbpp_binomial_prop$Laplace$theta)))
message(sprintf("cbind vs prop+weights: |dlogLik| %.2g |dfixef| %.2g |dtheta| %.2g",
                d_ll, d_fe, d_th))
if (d_ll > 1e-8 || d_fe > 1e-6 || d_th > 1e-6) stop("cbpp cbind and proportion fits differ")

out <- list(
  meta = r_meta("tests/data/make_glmer_reference.R", control = glmer_ctrl_text,
                seeds = list(glmer_sim_binary = 20240621, glmer_sim_pois_offset = 20240622,
                             glmer_sim_pois_crossed = 20240623),
                cbpp_cbind_vs_proportion = list(abs_diff_logLik = d_ll,
                                                max_abs_diff_fixef = d_fe,
                                                max_abs_diff_theta = d_th),
                notes = "See tests/data/README.md, section 'glmer_reference.json'."),
  factor_levels = lapply(datasets, factor_levels_of),
  models = results
)

write_reference_json(out, "glmer_reference.json")
