# Reference numbers for exact (simulated) restricted likelihood ratio tests of
# a variance component: RLRsim::exactRLRT (REML) and RLRsim::exactLRT (ML).
#
# Run from the repository root:
#
#     Rscript tests/data/make_rlrsim_reference.R
#
# Writes into tests/data/:
#   rlrsim_reference.json
#   rlrsim_sim_weak.csv      one random intercept with a weak variance (set.seed)
#   rlrsim_sim_absent.csv    one random intercept with variance 0 (set.seed)
#   rlrsim_sim_crossed.csv   crossed design, test one factor given the other
#
# Requires lme4, RLRsim, jsonlite. Every test uses nsim = 1e5 with seed = SEED;
# the whole script takes under a minute.

source(file.path("tests", "data", "reference_common.R"))
suppressPackageStartupMessages(library(RLRsim))

NSIM <- 1e5
SEED <- 20240701
SEED2 <- 20240801   # a second seed, to show the Monte Carlo spread of p-values

## ---------------------------------------------------------------------------
## Data
## ---------------------------------------------------------------------------

# Weak component: 12 groups x 6 obs, sd_b = 0.35, sigma = 1.
set.seed(20240702)
weak <- data.frame(g = factor(rep(sprintf("g%02d", 1:12), each = 6)))
weak$y <- round(5 + rnorm(12, sd = 0.35)[as.integer(weak$g)] + rnorm(72), 4)

# Absent component: 10 groups x 5 obs, sd_b = 0.
set.seed(20240704)
absent <- data.frame(g = factor(rep(sprintf("g%02d", 1:10), each = 5)))
absent$y <- round(2 + rnorm(50), 4)

# Crossed: 10 levels of a x 8 levels of b, 2 replicates; a strong, b weak.
set.seed(20240708)
crossed <- expand.grid(rep = 1:2, b = sprintf("b%d", 1:8), a = sprintf("a%02d", 1:10),
                       stringsAsFactors = FALSE)[, c("a", "b", "rep")]
ua <- rnorm(10, sd = 1.0); names(ua) <- sprintf("a%02d", 1:10)
ub <- rnorm(8, sd = 0.3); names(ub) <- sprintf("b%d", 1:8)
crossed$y <- round(ua[crossed$a] + ub[crossed$b] + rnorm(nrow(crossed)), 4)
crossed$a <- factor(crossed$a); crossed$b <- factor(crossed$b)
rownames(crossed) <- NULL

write_csv_labels(weak, "rlrsim_sim_weak.csv")
write_csv_labels(absent, "rlrsim_sim_absent.csv")
write_csv_labels(crossed, "rlrsim_sim_crossed.csv")

datasets <- list(Dyestuff = lme4::Dyestuff, Dyestuff2 = lme4::Dyestuff2,
                 Pastes = lme4::Pastes, rlrsim_sim_weak = weak,
                 rlrsim_sim_absent = absent, rlrsim_sim_crossed = crossed)

## ---------------------------------------------------------------------------
## Helpers
## ---------------------------------------------------------------------------

null_summary <- function(sample) {
  if (is.null(sample)) return(NULL)
  q <- quantile(sample, c(0.5, 0.9, 0.95, 0.99), names = FALSE)  # type 7
  list(n = length(sample),
       mean = mean(sample),
       var = var(sample),
       prob_zero = mean(sample == 0),
       quantiles = list(`0.5` = q[1], `0.9` = q[2], `0.95` = q[3], `0.99` = q[4]),
       max = max(sample))
}

# Run f() recording (not failing on) RLRsim's messages and warnings.
with_notes <- function(f) {
  notes <- character()
  val <- withCallingHandlers(f(),
    warning = function(w) { notes <<- c(notes, paste("warning:", conditionMessage(w)))
                            invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, paste("message:", trimws(conditionMessage(m))))
                            invokeRestart("muffleMessage") })
  list(value = val, notes = as.list(notes))
}

fit_lmer <- function(formula, dat, reml, label, singular_ok = FALSE) {
  fit <- fit_strict(lmer(as.formula(formula), data = dat, REML = reml, control = lmer_ctrl),
                    label, singular_ok = singular_ok)
  check_merMod(fit, label, singular_ok = singular_ok)
  fit
}

fit_brief <- function(fit) {
  list(formula = paste(deparse(formula(fit)), collapse = " "),
       REML = isREML(fit),
       logLik = as.numeric(logLik(fit)),
       theta = as.list(getME(fit, "theta")),
       sigma = sigma(fit),
       varcorr = varcorr_entries(fit))
}

test_entry <- function(res, notes, stat_name, extra = list()) {
  stat <- as.numeric(res$statistic)
  p <- res$p.value
  c(list(statistic_name = stat_name,
         statistic = stat,
         p_value = p,
         p_value_mc_se = sqrt(p * (1 - p) / NSIM),
         nsim = if (is.null(res$sample)) 0 else length(res$sample),
         seed = SEED,
         p_value_chibar_50_50 = 0.5 * pchisq(stat, 1, lower.tail = FALSE),
         # RLRsim's p-value is mean(statistic < null sample); for a boundary fit
         # the statistic is 0 up to rounding (e.g. 5.7e-14) and that p-value is
         # then 1 - P(null = 0), an artifact: treat the test as p = 1.
         statistic_is_numerical_zero = stat < 1e-8,
         null_distribution = null_summary(res$sample),
         rlrsim_notes = notes),
    extra)
}

# Null distribution of the RLRT straight from RLRTSim, for the boundary cases
# where exactRLRT skips the simulation (statistic 0, p = 1).
rlrt_null_direct <- function(m) {
  d <- RLRsim:::extract.lmerModDesign(m)
  Vr <- d$Vr
  if (all(Vr == 0)) diag(Vr) <- 1      # as exactRLRT does for a zero estimate
  RLRTSim(d$X, d$Z, qrX = qr(d$X), sqrt.Sigma = chol(cov2cor(Vr)), lambda0 = 0,
          seed = SEED, nsim = NSIM)
}

lrt_direct <- function(m, m0, seed = SEED) {
  d <- RLRsim:::extract.lmerModDesign(m)
  Vr <- d$Vr
  if (all(Vr == 0)) diag(Vr) <- 1
  q <- ncol(d$X) - length(coef(m0))
  stat <- max(0, 2 * as.numeric(logLik(m, REML = FALSE)) - 2 * as.numeric(logLik(m0, REML = FALSE)))
  sample <- LRTSim(d$X, d$Z, q, sqrt.Sigma = chol(cov2cor(Vr)), seed = seed, nsim = NSIM)
  list(statistic = c(LRT = stat), p.value = mean(stat < sample), sample = sample)
}

## ---------------------------------------------------------------------------
## Single-component tests: exactRLRT(m) and exactLRT(m_ML, lm null)
## ---------------------------------------------------------------------------

single <- list(
  dyestuff  = list(formula = "Yield ~ 1 + (1 | Batch)", null = "Yield ~ 1",
                   data = "Dyestuff", singular_ok = FALSE),
  dyestuff2 = list(formula = "Yield ~ 1 + (1 | Batch)", null = "Yield ~ 1",
                   data = "Dyestuff2", singular_ok = TRUE),
  sim_weak  = list(formula = "y ~ 1 + (1 | g)", null = "y ~ 1",
                   data = "rlrsim_sim_weak", singular_ok = FALSE),
  sim_absent = list(formula = "y ~ 1 + (1 | g)", null = "y ~ 1",
                    data = "rlrsim_sim_absent", singular_ok = TRUE)
)

results <- list()
for (key in names(single)) {
  spec <- single[[key]]
  dat <- datasets[[spec$data]]
  message("testing ", key)
  m_reml <- fit_lmer(spec$formula, dat, TRUE, paste(key, "REML"), spec$singular_ok)
  m_ml   <- fit_lmer(spec$formula, dat, FALSE, paste(key, "ML"), spec$singular_ok)
  m0 <- lm(as.formula(spec$null), data = dat)

  r1 <- with_notes(function() exactRLRT(m_reml, nsim = NSIM, seed = SEED))
  null_direct <- NULL
  if (is.null(r1$value$sample)) {
    null_direct <- null_summary(rlrt_null_direct(m_reml))
  } else {
    # exactRLRT(m) simulates exactly what RLRTSim does with the same seed
    stopifnot(isTRUE(all.equal(sort(r1$value$sample), sort(rlrt_null_direct(m_reml)))))
  }
  p2_rlrt <- suppressMessages(suppressWarnings(
    exactRLRT(m_reml, nsim = NSIM, seed = SEED2)))$p.value
  ll0_reml <- as.numeric(logLik(m0, REML = TRUE))
  ll0_ml <- as.numeric(logLik(m0, REML = FALSE))
  rlrt <- test_entry(r1$value, r1$notes, "RLRT", list(
    formula = spec$formula, data = paste0(spec$data, ".csv"),
    call = "exactRLRT(m, nsim = 1e5, seed = SEED)",
    fit = fit_brief(m_reml),
    null_model = list(formula = spec$null, logLik_REML = ll0_reml),
    statistic_check = max(0, 2 * (as.numeric(logLik(m_reml)) - ll0_reml)),
    p_value_seed2 = p2_rlrt, seed2 = SEED2,
    null_distribution_direct = null_direct))

  r2 <- tryCatch(with_notes(function() exactLRT(m_ml, m0, nsim = NSIM, seed = SEED)),
                 error = function(e) NULL)
  lrt_call <- "exactLRT(m_ML, lm(null), nsim = 1e5, seed = SEED)"
  if (is.null(r2)) {
    # RLRsim 3.1.8's exactLRT fails (chol of cov2cor(0)) when the ML variance
    # estimate is 0; do what it does, with the identity for sqrt.Sigma as
    # exactRLRT uses in that case.
    r2 <- with_notes(function() lrt_direct(m_ml, m0))
    lrt_call <- paste("LRTSim(X, Z, q = 0, sqrt.Sigma = identity, nsim = 1e5, seed = SEED);",
                      "p = mean(stat < sample) (exactLRT errors on a zero variance estimate)")
  }
  p2_lrt <- tryCatch(suppressMessages(suppressWarnings(
    exactLRT(m_ml, m0, nsim = NSIM, seed = SEED2)))$p.value,
    error = function(e) suppressMessages(lrt_direct(m_ml, m0, SEED2))$p.value)
  lrt <- test_entry(r2$value, r2$notes, "LRT", list(
    p_value_seed2 = na_to_null(p2_lrt), seed2 = SEED2,
    formula = spec$formula, data = paste0(spec$data, ".csv"),
    call = lrt_call,
    fit = fit_brief(m_ml),
    null_model = list(formula = spec$null, logLik_ML = ll0_ml),
    statistic_check = max(0, 2 * (as.numeric(logLik(m_ml)) - ll0_ml))))
  for (e in list(rlrt, lrt)) {
    if (abs(e$statistic - e$statistic_check) > 1e-8) stop(key, ": statistic mismatch")
  }
  message(sprintf("   RLRT %.6f p %.5f (chibar %.5f) | LRT %.6f p %.5f",
                  rlrt$statistic, rlrt$p_value, rlrt$p_value_chibar_50_50,
                  lrt$statistic, lrt$p_value))
  results[[key]] <- list(exactRLRT = rlrt, exactLRT = lrt)
}

## ---------------------------------------------------------------------------
## A component tested in the presence of another: exactRLRT(m, mA, m0)
##   m:  model with only the tested random effect
##   mA: full model (alternative), m0: full model without the tested effect
## ---------------------------------------------------------------------------

multi <- list(
  pastes_sample = list(m = "strength ~ 1 + (1 | sample)",
                       mA = "strength ~ 1 + (1 | batch) + (1 | sample)",
                       m0 = "strength ~ 1 + (1 | batch)",
                       tested = "sample", data = "Pastes"),
  pastes_batch = list(m = "strength ~ 1 + (1 | batch)",
                      mA = "strength ~ 1 + (1 | batch) + (1 | sample)",
                      m0 = "strength ~ 1 + (1 | sample)",
                      tested = "batch", data = "Pastes"),
  sim_crossed_b = list(m = "y ~ 1 + (1 | b)",
                       mA = "y ~ 1 + (1 | a) + (1 | b)",
                       m0 = "y ~ 1 + (1 | a)",
                       tested = "b", data = "rlrsim_sim_crossed")
)

for (key in names(multi)) {
  spec <- multi[[key]]
  dat <- datasets[[spec$data]]
  message("testing ", key)
  m  <- fit_lmer(spec$m, dat, TRUE, paste(key, "m"))
  mA <- fit_lmer(spec$mA, dat, TRUE, paste(key, "mA"))
  m0 <- fit_lmer(spec$m0, dat, TRUE, paste(key, "m0"))
  r <- with_notes(function() exactRLRT(m, mA, m0, nsim = NSIM, seed = SEED))
  p2 <- suppressMessages(suppressWarnings(
    exactRLRT(m, mA, m0, nsim = NSIM, seed = SEED2)))$p.value
  e <- test_entry(r$value, r$notes, "RLRT", list(
    p_value_seed2 = p2, seed2 = SEED2,
    tested_component = spec$tested, data = paste0(spec$data, ".csv"),
    call = "exactRLRT(m, mA, m0, nsim = 1e5, seed = SEED)",
    m = fit_brief(m), mA = fit_brief(mA), m0 = fit_brief(m0),
    statistic_check = max(0, 2 * (as.numeric(logLik(mA)) - as.numeric(logLik(m0))))))
  if (abs(e$statistic - e$statistic_check) > 1e-8) stop(key, ": statistic mismatch")
  message(sprintf("   RLRT %.6f p %.5f (chibar %.5f)", e$statistic, e$p_value,
                  e$p_value_chibar_50_50))
  results[[key]] <- list(exactRLRT = e)
}

out <- list(
  meta = r_meta("tests/data/make_rlrsim_reference.R", extra_pkgs = "RLRsim",
                control = lmer_ctrl_text, nsim = NSIM, seed = SEED,
                data_seeds = list(rlrsim_sim_weak = 20240702, rlrsim_sim_absent = 20240704,
                                  rlrsim_sim_crossed = 20240708),
                notes = "See tests/data/README.md, section 'rlrsim_reference.json'."),
  factor_levels = lapply(datasets, factor_levels_of),
  tests = results
)

write_reference_json(out, "rlrsim_reference.json")
